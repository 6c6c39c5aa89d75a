//! The page: HTML built by hand (escaped), with the stylesheet, the drawing
//! script and the data inlined, so the file opens anywhere offline.
use std::fmt::Write;

use serde_json::Value;

use super::digest::Digest;
use super::explain::Finding;
use super::input::{CheckView, ReportInput};
use super::payload::Payload;

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");
/// Per-key rows in the verdict table; valid keys past it are counted.
const KEY_ROWS_MAX: usize = 200;

pub fn render(input: &ReportInput, digest: &Digest, findings: &[Finding], payload: &Payload) -> String {
    let mut page = String::with_capacity(1 << 20);
    let verdict = match (input.verdict, &input.harness_error) {
        (Some(verdict), _) => verdict.name(),
        (None, Some(_)) => "harness error",
        (None, None) => "no verdict",
    };
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} — {}</title><style>{STYLE}</style></head><body>\n",
        esc(verdict.to_uppercase().as_str()),
        esc(&input.title)
    );
    header(&mut page, input, verdict);
    checks_table(&mut page, &input.checks);
    findings_section(&mut page, findings);
    charts(&mut page, digest, payload);
    logs(&mut page, input);
    let data = serde_json::to_string(&payload.data).unwrap_or_else(|_| "{}".to_string());
    // `</script` or `<!--` inside would end or confuse the script element;
    // `<` only occurs inside JSON strings, where `\u003c` means the same.
    let data = data.replace('<', "\\u003c");
    let _ = write!(
        page,
        "<script type=\"application/json\" id=\"report-data\">{data}</script>\n<script>{SCRIPT}</script>\n</body></html>\n"
    );
    page
}

fn header(page: &mut String, input: &ReportInput, verdict: &str) {
    let _ = write!(
        page,
        "<header><div id=\"verdict\" class=\"verdict {v}\">{V}</div><div><h1>{title}</h1>",
        v = esc(verdict).replace(' ', "-"),
        V = esc(&verdict.to_uppercase()),
        title = esc(&input.title)
    );
    if let Some(seed) = input.seed {
        let _ = write!(page, "<div class=\"fact\"><b>seed</b> <code id=\"seed\">{seed}</code></div>");
    }
    if let Some(replay) = &input.replay {
        let _ = write!(page, "<div class=\"fact\"><b>replay</b> <code id=\"replay\">{}</code></div>", esc(replay));
    }
    for (label, value) in &input.facts {
        let _ = write!(page, "<div class=\"fact\"><b>{}</b> {}</div>", esc(label), esc(value));
    }
    page.push_str("</div></header>\n");
    if !input.reasons.is_empty() || input.harness_error.is_some() {
        page.push_str("<section id=\"reasons\"><h2>Why</h2><ul>");
        if let Some(error) = &input.harness_error {
            let _ = write!(page, "<li id=\"harness-error\">harness error: {}</li>", esc(error));
        }
        for reason in &input.reasons {
            let _ = write!(page, "<li>{}</li>", esc(reason));
        }
        page.push_str("</ul></section>\n");
    }
}

fn checks_table(page: &mut String, checks: &[CheckView]) {
    if checks.is_empty() {
        // A run that ended in a harness error has no verdicts; an empty
        // table would look like a run with nothing wrong.
        page.push_str("<section id=\"checks\"><h2>Verdict per checker</h2><p>No checker ran.</p></section>\n");
        return;
    }
    page.push_str("<section id=\"checks\"><h2>Verdict per checker</h2><table><tr><th>checker</th><th>verdict</th><th>detail</th></tr>");
    for check in checks {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"{v}\">{v}</td><td>{}</td></tr>",
            esc(&check.name),
            esc(&check.reason().unwrap_or_default()),
            v = check.verdict.name()
        );
    }
    page.push_str("</table>");
    for check in checks {
        key_table(page, check);
    }
    page.push_str("</section>\n");
}

/// Per-key verdicts of a per-key checker: the keys that are not valid in
/// an open list (they are what the reader came for), the valid ones folded
/// away, so a run with many keys still shows its counterexample on the
/// first screen.
fn key_table(page: &mut String, check: &CheckView) {
    let Some(keys) = check.details.get("keys").and_then(Value::as_array) else { return };
    let verdict_of = |k: &Value| k.get("verdict").and_then(Value::as_str).unwrap_or("?").to_string();
    let (valid, other): (Vec<&Value>, Vec<&Value>) = keys.iter().partition(|k| verdict_of(k) == "valid");
    if !other.is_empty() {
        let summary = format!("{}: {} of {} keys not valid", esc(&check.name), other.len(), keys.len());
        key_rows(page, &summary, &other, true, &verdict_of);
    }
    if !valid.is_empty() {
        let summary = format!("{}: {} valid keys", esc(&check.name), valid.len());
        key_rows(page, &summary, &valid, false, &verdict_of);
    }
}

fn key_rows(page: &mut String, summary: &str, rows: &[&Value], open: bool, verdict_of: &dyn Fn(&Value) -> String) {
    let _ = write!(
        page,
        "<details class=\"keys\"{}><summary>{summary}</summary><table><tr><th>key</th><th>verdict</th><th>ops</th><th>reason</th></tr>",
        if open { " open" } else { "" }
    );
    for key in rows.iter().take(KEY_ROWS_MAX) {
        let v = verdict_of(key);
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"{v}\">{v}</td><td>{}</td><td>{}</td></tr>",
            esc(key.get("key").and_then(Value::as_str).unwrap_or("?")),
            key.get("op_count").and_then(Value::as_u64).unwrap_or(0),
            esc(key.get("reason").and_then(Value::as_str).unwrap_or("")),
            v = esc(&v)
        );
    }
    page.push_str("</table>");
    if rows.len() > KEY_ROWS_MAX {
        let _ = write!(page, "<p>{} more keys, all in results.json.</p>", rows.len() - KEY_ROWS_MAX);
    }
    page.push_str("</details>");
}

fn findings_section(page: &mut String, findings: &[Finding]) {
    if findings.is_empty() {
        return;
    }
    page.push_str("<section id=\"counterexample\"><h2>What went wrong</h2>");
    for finding in findings {
        let _ = write!(
            page,
            "<div class=\"finding\"><h3><span class=\"{v}\">{v}</span> {} — {}</h3>",
            esc(&finding.checker),
            esc(&finding.title),
            v = finding.verdict.name()
        );
        for sentence in &finding.sentences {
            let tag = if sentence.contains('\n') { "pre" } else { "p" };
            let _ = write!(page, "<{tag}>{}</{tag}>", esc(sentence));
        }
        for (label, ops) in &finding.op_lists {
            let class = label.split_whitespace().next().unwrap_or("");
            let _ = write!(page, "<div class=\"ops {}\"><b>{}</b><ul>", esc(class), esc(label));
            for op in ops {
                let _ = write!(page, "<li><code>{}</code></li>", esc(op));
            }
            page.push_str("</ul></div>");
        }
        lost_table(page, finding);
        page.push_str("</div>");
    }
    page.push_str("<p class=\"hint\">Highlighted on the timeline below: the stuck operation in red, operations running with it in orange, the end of the consistent prefix in blue, lost writes in purple, the read that misses one in teal.</p></section>\n");
}

fn lost_table(page: &mut String, finding: &Finding) {
    if finding.lost.is_empty() {
        return;
    }
    page.push_str("<table id=\"lost\"><tr><th>key</th><th>element</th><th>invoked</th><th>acknowledged</th><th>faults then</th><th>write line</th><th>missing from read line</th></tr>");
    let at = |ms: Option<f64>| ms.map_or("?".to_string(), |ms| format!("{:.3} s", ms / 1e3));
    for lost in &finding.lost {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&lost.key),
            esc(&lost.element),
            at(lost.invoke_ms),
            at(lost.ack_ms),
            esc(&lost.faults),
            lost.write_line,
            lost.read_line
        );
    }
    page.push_str("</table>");
}

fn charts(page: &mut String, digest: &Digest, payload: &Payload) {
    let total = digest.ops.len();
    let note = if payload.timeline_ops as usize >= total {
        format!("all {total} operations")
    } else {
        format!(
            "{} of {total} operations: a window around the first highlighted operation (or the start); the full history is history.jsonl",
            payload.timeline_ops
        )
    };
    let _ = write!(
        page,
        "<section id=\"timeline-section\"><h2>Timeline</h2><p class=\"hint\">{note}. One lane per process; bars from invoke to completion: \
         <span class=\"sw ok\"></span>ok <span class=\"sw fail\"></span>fail <span class=\"sw info\"></span>info (unknown); faults shaded. \
         Wheel or buttons to zoom, drag to pan, hover for the operation.</p>\
         <div class=\"controls\"><button id=\"zoom-in\">zoom in</button><button id=\"zoom-out\">zoom out</button>\
         <button id=\"zoom-all\">whole run</button><button id=\"zoom-focus\">counterexample</button>\
         <label>key <select id=\"key-filter\"><option value=\"-1\">all keys</option></select></label> <span id=\"view-range\"></span></div>\
         <div id=\"timeline-box\"><canvas id=\"timeline\"></canvas></div><div id=\"tooltip\"></div></section>\n\
         <section id=\"latency-section\"><h2>Latency</h2><p class=\"hint\">One point per operation (sampled on large runs), at its completion, coloured by outcome; log scale.</p><canvas id=\"latency\"></canvas></section>\n\
         <section id=\"throughput-section\"><h2>Throughput</h2><p class=\"hint\">Completions per second: ok, fail, info.</p><canvas id=\"throughput\"></canvas></section>\n"
    );
    if digest.skipped_lines > 0 {
        let _ = write!(page, "<p class=\"hint\">{} history lines are not faultline events and are not drawn.</p>", digest.skipped_lines);
    }
}

fn logs(page: &mut String, input: &ReportInput) {
    if input.logs.is_empty() {
        return;
    }
    page.push_str("<section id=\"logs\"><h2>Node logs</h2><ul>");
    for log in &input.logs {
        let _ = write!(page, "<li><a href=\"{}\">{}</a> ({} bytes)</li>", esc(&log.href), esc(&log.label), log.bytes);
    }
    if input.logs_not_listed > 0 {
        let _ = write!(page, "<li>{} more under nodes/</li>", input.logs_not_listed);
    }
    page.push_str("</ul></section>\n");
}

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::digest::Builder;
    use faultline_checkers::Verdict;
    use crate::report::payload;
    use std::collections::HashSet;

    #[test]
    fn hostile_names_cannot_break_out_of_text_or_data() {
        let wanted = HashSet::new();
        let mut builder = Builder::new(&wanted);
        let evil = r#"</script><script>alert(1)</script><!--"#;
        let key = serde_json::to_string(evil).unwrap();
        builder.push(&format!(r#"{{"process":0,"type":"invoke","f":"write","key":{key},"value":1,"time_ns":1}}"#), 1);
        builder.push(&format!(r#"{{"process":0,"type":"ok","f":"write","key":{key},"value":1,"time_ns":2}}"#), 2);
        let digest = builder.finish();
        let input = ReportInput { title: evil.to_string(), ..ReportInput::default() };
        let page = render(&input, &digest, &[], &payload::build(&digest, &[]));
        assert_eq!(page.matches("<script").count(), 2, "only the data and code elements open a script");
        assert!(!page.contains("<!--"));
        assert!(page.contains("&lt;/script&gt;"), "the title is escaped");
    }

    #[test]
    fn a_harness_error_report_says_so_instead_of_verdicts() {
        let digest = Builder::new(&HashSet::new()).finish();
        let input = ReportInput {
            title: "faultline test t".into(),
            harness_error: Some("cluster: node 2 <exited>".into()),
            ..ReportInput::default()
        };
        let page = render(&input, &digest, &[], &payload::build(&digest, &[]));
        assert!(page.contains("class=\"verdict harness-error\">HARNESS ERROR<"), "badge");
        assert!(page.contains("<li id=\"harness-error\">harness error: cluster: node 2 &lt;exited&gt;</li>"), "reason");
        assert!(page.contains("No checker ran."), "no empty verdict table");
    }

    #[test]
    fn keys_that_are_not_valid_are_listed_open_and_valid_ones_folded() {
        let mut keys: Vec<Value> = (0..50).map(|i| serde_json::json!({"key": format!("k{i}"), "verdict": "valid", "op_count": 10})).collect();
        keys.push(serde_json::json!({"key": "bad", "verdict": "invalid", "op_count": 7, "reason": "no linearization"}));
        let check = CheckView { name: "linearizable-kv".into(), verdict: Verdict::Invalid, details: serde_json::json!({ "keys": keys }) };
        let mut page = String::new();
        key_table(&mut page, &check);
        let open = page.find("<details class=\"keys\" open><summary>linearizable-kv: 1 of 51 keys not valid</summary>").expect("open list");
        let folded = page.find("<details class=\"keys\"><summary>linearizable-kv: 50 valid keys</summary>").expect("folded list");
        assert!(open < folded);
        let bad = page.find("<td>bad</td>").unwrap();
        assert!(open < bad && bad < folded, "the invalid key is in the open list");
    }
}
