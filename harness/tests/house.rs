//! The house rules of the workspace, read from the source: every crate has
//! a README; no source file is over 500 lines (three older files are held
//! where they are until they are split); and no two sibling modules of a
//! crate import each other, directly or around a circle.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: [&str; 6] = ["harness", "checkers", "workloads", "lazyfs", "cluster-node", "examples/rust-api"];
const LINES_MAX: usize = 500;
/// Files above the bound, each held at its size today: they may shrink,
/// never grow.
const LINES_HELD: [(&str, usize); 3] =
    [("checkers/src/op/mod.rs", 506), ("cluster-node/src/raft/node.rs", 577), ("cluster-node/src/server/core.rs", 628)];

/// The workspace; `FAULTLINE_HOUSE_ROOT` points the rules at another
/// checkout (to see what they say of an older tree).
fn root() -> PathBuf {
    match std::env::var_os("FAULTLINE_HOUSE_ROOT") {
        Some(root) => PathBuf::from(root),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf(),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_crate_has_a_readme_that_says_what_it_owns() {
    for krate in CRATES {
        let readme = root().join(krate).join("README.md");
        let text = std::fs::read_to_string(&readme).unwrap_or_else(|_| panic!("{krate} has no README.md"));
        assert!(text.lines().count() >= 5, "{krate}/README.md says too little");
    }
}

#[test]
fn no_source_file_is_over_the_bound() {
    let mut over = Vec::new();
    for krate in CRATES {
        let mut files = Vec::new();
        rust_files(&root().join(krate).join("src"), &mut files);
        for file in files {
            let lines = std::fs::read_to_string(&file).unwrap().lines().count();
            let name = file.strip_prefix(root()).unwrap().display().to_string();
            let bound = LINES_HELD.iter().find(|(held, _)| *held == name).map_or(LINES_MAX, |(_, lines)| *lines);
            if lines > bound {
                over.push(format!("{name}: {lines} lines (bound {bound})"));
            }
        }
    }
    assert!(over.is_empty(), "split these files: {over:#?}");
}

#[test]
fn sibling_modules_never_import_each_other_in_a_circle() {
    let mut circles = Vec::new();
    for krate in CRATES {
        let src = root().join(krate).join("src");
        if src.is_dir() {
            circles.extend(crate_circles(&src));
        }
    }
    assert!(circles.is_empty(), "import circles: {circles:#?}");
    // The detector finds one when there is one.
    let planted = std::env::temp_dir().join(format!("faultline-house-{}", std::process::id()));
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::write(planted.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(planted.join("a.rs"), "use crate::b::B;\npub struct A;\n").unwrap();
    std::fs::write(planted.join("b.rs"), "pub struct B(crate::a::A);\n").unwrap();
    assert_eq!(crate_circles(&planted).len(), 1, "a planted circle is found");
    std::fs::remove_dir_all(&planted).unwrap();
}

/// The module path of a file: `src/report/html.rs` is `report::html`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().to_string()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// Circles among the children of each module: child A depends on child B
/// when code under A names a path under B (`use crate::..`, `use super::..`,
/// or such a path inline). A child naming its parent is no edge.
fn crate_circles(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &files {
        let module = module_of(src, file);
        let text = strip(&std::fs::read_to_string(file).unwrap());
        for path in paths(&text) {
            let Some(target) = resolve(&module, &path, &modules) else { continue };
            let shared = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if shared == module.len() || shared == target.len() {
                continue;
            }
            let parent = module[..shared].to_vec();
            edges.entry(parent).or_default().entry(module[shared].clone()).or_default().insert(target[shared].clone());
        }
    }
    let mut found = Vec::new();
    for (parent, graph) in &edges {
        for cycle in strongly_connected(graph) {
            found.push(format!("{} in {}: {}", src.display(), parent.join("::"), cycle.join(" <-> ")));
        }
    }
    found
}

/// Comments, strings and character literals removed, so only code is read.
fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            'r' if chars.peek() == Some(&'#') => {
                // A raw string r#"..."#: its quotes end only at `"#`.
                let mut previous = ' ';
                for c in chars.by_ref() {
                    if previous == '"' && c == '#' {
                        break;
                    }
                    previous = c;
                }
                out.push_str("\"\"");
            }
            '\'' => {
                // 'x' and '\x' are characters; anything else is a lifetime.
                let mut ahead = chars.clone();
                match (ahead.next(), ahead.next()) {
                    (Some('\\'), _) => {
                        // The backslash and the escaped character, then up
                        // to the closing quote ('\u{..}' is longer).
                        chars.next();
                        chars.next();
                        for c in chars.by_ref() {
                            if c == '\'' {
                                break;
                            }
                        }
                        out.push_str("' '");
                    }
                    (Some(_), Some('\'')) => {
                        chars.next();
                        chars.next();
                        out.push_str("' '");
                    }
                    _ => out.push(c),
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if !escaped && c == '"' {
                        break;
                    }
                    escaped = !escaped && c == '\\';
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

/// Every `crate::`/`super::`/`self::` path the code names, `use` trees
/// expanded.
fn paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for statement in text.split(';') {
        if let Some(at) = statement.find("use ") {
            let before = &statement[..at];
            if before.trim_end().is_empty() || before.ends_with(' ') || before.ends_with('\n') {
                out.extend(expand(statement[at + 4..].trim()));
            }
        }
    }
    let bytes = text.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(found) = text[from..].find(start) {
            let at = from + found;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let end = text[at..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).map_or(text.len(), |e| at + e);
            out.push(text[at..end].trim_end_matches(':').to_string());
        }
    }
    out
}

fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or("").trim().to_string()];
    };
    let prefix = tree[..open].trim().trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut parts, mut depth, mut current) = (Vec::new(), 0, String::new());
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    let mut out = Vec::new();
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        match part {
            "self" => out.push(prefix.to_string()),
            _ => out.extend(expand(part).into_iter().map(|rest| format!("{prefix}::{rest}"))),
        }
    }
    out
}

/// The module a path names (the longest prefix that is a module).
fn resolve(module: &[String], path: &str, modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut segments = path.split("::").map(str::to_string).collect::<Vec<_>>().into_iter().peekable();
    let mut full = match segments.peek().map(String::as_str) {
        Some("crate") => {
            segments.next();
            Vec::new()
        }
        Some("super" | "self") => module.to_vec(),
        _ => return None,
    };
    for segment in segments {
        match segment.as_str() {
            "super" => {
                full.pop();
            }
            "self" => {}
            _ => full.push(segment),
        }
    }
    (0..=full.len()).rev().map(|n| full[..n].to_vec()).find(|prefix| modules.contains(prefix))
}

/// Tarjan's strongly connected components of more than one node.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(walk: &mut Walk<'g>, node: &'g str) {
        let index = walk.index.len();
        walk.index.insert(node, index);
        walk.low.insert(node, index);
        walk.stack.push(node);
        let graph = walk.graph;
        for next in graph.get(node).into_iter().flatten() {
            if !walk.index.contains_key(next.as_str()) {
                visit(walk, next);
                let low = walk.low[next.as_str()].min(walk.low[node]);
                walk.low.insert(node, low);
            } else if walk.stack.contains(&next.as_str()) {
                let low = walk.index[next.as_str()].min(walk.low[node]);
                walk.low.insert(node, low);
            }
        }
        if walk.low[node] == walk.index[node] {
            let mut component = Vec::new();
            while let Some(top) = walk.stack.pop() {
                component.push(top.to_string());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                walk.found.push(component);
            }
        }
    }
    let mut walk = Walk { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    let nodes: BTreeSet<&str> = graph.iter().flat_map(|(a, bs)| std::iter::once(a.as_str()).chain(bs.iter().map(String::as_str))).collect();
    for node in nodes {
        if !walk.index.contains_key(node) {
            visit(&mut walk, node);
        }
    }
    walk.found
}
