//! `regserver`: a small networked store of integer registers, written for
//! faultline's Rust API example (not part of faultline). One process, one
//! data directory, a line protocol on TCP:
//!
//! - `read K` → `ok V` or `ok nil`
//! - `write K V` → `ok`
//! - `cas K FROM TO` → `ok`, or `fail` when K does not hold FROM
//!
//! A write is acknowledged once the whole state is on disk (written to a
//! temporary file, fsynced, renamed over `state`). With `--bug
//! ack-before-write` (the bug the example plants) it is acknowledged at
//! once and written by a background thread every 200 ms, so a crash loses
//! writes the clients were told had happened.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest request line read.
const LINE_BYTES_MAX: u64 = 4096;
/// Connections served at once; more wait in the kernel's backlog.
const CONNECTIONS_MAX: usize = 256;
/// How often the planted bug writes the state behind the clients' backs.
const LAZY_WRITE_MS: u64 = 200;

type State = Arc<Mutex<BTreeMap<String, i64>>>;

struct Server {
    state: State,
    dir: PathBuf,
    ack_before_write: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|arg| arg == name).and_then(|at| args.get(at + 1)).cloned();
    let (Some(listen), Some(dir)) = (flag("--listen"), flag("--data-dir")) else {
        eprintln!("usage: regserver --listen ADDR --data-dir DIR [--bug ack-before-write]");
        std::process::exit(2);
    };
    let ack_before_write = match flag("--bug").as_deref() {
        None => false,
        Some("ack-before-write") => true,
        Some(other) => {
            eprintln!("regserver: unknown bug {other:?}");
            std::process::exit(2);
        }
    };
    let dir = PathBuf::from(dir);
    let state: State = Arc::new(Mutex::new(load(&dir)));
    let server = Arc::new(Server { state, dir, ack_before_write });
    if ack_before_write {
        let server = server.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(LAZY_WRITE_MS));
            let snapshot = lock(&server.state).clone();
            if let Err(error) = save(&server.dir, &snapshot) {
                eprintln!("regserver: cannot save: {error}");
            }
        });
    }
    let listener = match TcpListener::bind(&listen) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("regserver: cannot listen on {listen}: {error}");
            std::process::exit(1);
        }
    };
    let open = Arc::new(Mutex::new(0usize));
    for stream in listener.incoming().flatten() {
        if *lock(&open) >= CONNECTIONS_MAX {
            continue; // Dropped: the client sees a reset and retries.
        }
        *lock(&open) += 1;
        let (server, open) = (server.clone(), open.clone());
        std::thread::spawn(move || {
            serve(&server, stream);
            *lock(&open) -= 1;
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn serve(server: &Server, stream: TcpStream) {
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match (&mut reader).take(LINE_BYTES_MAX).read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let answer = answer(server, line.split_whitespace().collect());
        if writer.write_all(format!("{answer}\n").as_bytes()).is_err() {
            return;
        }
    }
}

fn answer(server: &Server, words: Vec<&str>) -> String {
    let number = |text: &str| text.parse::<i64>().map_err(|_| format!("err not an integer: {text}"));
    let mut state = lock(&server.state);
    let changed = match words.as_slice() {
        ["read", key] => return state.get(*key).map_or("ok nil".to_string(), |value| format!("ok {value}")),
        ["write", key, value] => match number(value) {
            Ok(value) => state.insert(key.to_string(), value) != Some(value),
            Err(error) => return error,
        },
        ["cas", key, from, to] => match (number(from), number(to)) {
            (Ok(from), Ok(to)) if state.get(*key) == Some(&from) => {
                state.insert(key.to_string(), to);
                true
            }
            (Ok(_), Ok(_)) => return "fail".to_string(),
            (Err(error), _) | (_, Err(error)) => return error,
        },
        _ => return "err unknown request".to_string(),
    };
    if changed && !server.ack_before_write {
        // The state is written while the lock is held, so what is on disk
        // is never older than what was acknowledged.
        if let Err(error) = save(&server.dir, &state) {
            return format!("err cannot save: {error}");
        }
    }
    "ok".to_string()
}

fn load(dir: &Path) -> BTreeMap<String, i64> {
    let text = std::fs::read_to_string(dir.join("state")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn save(dir: &Path, state: &BTreeMap<String, i64>) -> std::io::Result<()> {
    let text: String = state.iter().map(|(key, value)| format!("{key} {value}\n")).collect();
    let temporary = dir.join("state.tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, dir.join("state"))?;
    std::fs::File::open(dir)?.sync_all()
}
