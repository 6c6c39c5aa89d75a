//! The generated key-value history of `faultline bench check`: Porcupine's
//! kv shape (get, put, append on string values; a missing key reads `""`),
//! linearizable by construction, or with one planted stale read.
//!
//! Appends make values grow, as in Jepsen's kv tests: a key's value is
//! every token appended since its last put, and each get returns it whole,
//! so reads carry long values and the reader must hold them.
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The two formats the generated history is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryFormat {
    /// Jepsen's EDN maps, one a line, exactly as Porcupine's kv corpus
    /// (`{:process 0, :type :invoke, :f :get, :key "4", :value nil}`).
    Edn,
    /// faultline's JSON lines.
    Jsonl,
}

impl HistoryFormat {
    pub fn name(self) -> &'static str {
        match self {
            HistoryFormat::Edn => "edn",
            HistoryFormat::Jsonl => "jsonl",
        }
    }
}

/// What to generate.
pub struct KvSpec {
    pub ops: u64,
    pub keys: u64,
    pub clients: u64,
    pub seed: u64,
    pub format: HistoryFormat,
    /// Plant one stale read halfway through.
    pub stale: bool,
}

/// Percent of operations that are gets and appends; the rest are puts,
/// which start a key's value again (so values grow, but not without end).
const GET_PERCENT: u32 = 50;
const APPEND_PERCENT: u32 = 45;

/// Time between one client's invocations; each operation takes effect one
/// unit after its call and returns within the slot, so a client never has
/// two operations pending while clients overlap each other.
const SLOT_NS: u64 = 100;

/// Per key: the current value, the one before it, and when the write that
/// made the current value returned.
#[derive(Default)]
struct KeyState {
    current: String,
    previous: Option<String>,
    current_acked_ns: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Get,
    Put,
    Append,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Get => "get",
            Kind::Put => "put",
            Kind::Append => "append",
        }
    }
}

/// Writes the history to `path`; returns the bytes written.
pub fn generate_kv(path: &Path, spec: &KvSpec) -> anyhow::Result<u64> {
    let file = std::fs::File::create(path).with_context(|| path.display().to_string())?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut keys: Vec<KeyState> = (0..spec.keys).map(|_| KeyState::default()).collect();
    // Completions waiting to be written, ordered by time: bounded by the
    // number of clients, as each client has at most one pending.
    let mut returns: BinaryHeap<Reverse<(u64, String)>> = BinaryHeap::new();
    let mut planted = !spec.stale;
    let mut bytes = 0u64;
    let step_ns = (SLOT_NS / spec.clients.max(1)).max(1);
    let mut line = String::new();
    for i in 0..spec.ops {
        let call_ns = i * step_ns;
        while returns.peek().is_some_and(|Reverse((t, _))| *t < call_ns) {
            let Reverse((_, text)) = returns.pop().expect("peeked");
            bytes += text.len() as u64;
            out.write_all(text.as_bytes())?;
        }
        let process = i % spec.clients;
        let key = rng.random_range(0..spec.keys);
        let return_ns = call_ns + 1 + rng.random_range(1..SLOT_NS - 2);
        let state = &mut keys[key as usize];
        let roll = rng.random_range(0..100u32);
        let (kind, argument, result) = if roll < GET_PERCENT {
            let can_plant = !planted && i >= spec.ops / 2 && state.previous.is_some() && state.current_acked_ns < call_ns;
            let seen = match (&state.previous, can_plant) {
                (Some(previous), true) => {
                    planted = true;
                    previous.clone()
                }
                _ => state.current.clone(),
            };
            (Kind::Get, None, seen)
        } else {
            let (kind, value) = if roll < GET_PERCENT + APPEND_PERCENT { (Kind::Append, format!("x{i} ")) } else { (Kind::Put, format!("p{i} ")) };
            let next = if kind == Kind::Append { format!("{}{value}", state.current) } else { value.clone() };
            state.previous = Some(std::mem::replace(&mut state.current, next));
            state.current_acked_ns = return_ns;
            (kind, Some(value.clone()), value)
        };
        line.clear();
        let invoke = Line { process, kind: "invoke", f: kind, key, value: argument.as_deref(), time_ns: call_ns };
        invoke.write(&mut line, spec.format);
        bytes += line.len() as u64;
        out.write_all(line.as_bytes())?;
        let mut completion = String::with_capacity(line.len() + result.len());
        let ok = Line { kind: "ok", value: Some(&result), time_ns: return_ns, ..invoke };
        ok.write(&mut completion, spec.format);
        returns.push(Reverse((return_ns, completion)));
    }
    while let Some(Reverse((_, text))) = returns.pop() {
        bytes += text.len() as u64;
        out.write_all(text.as_bytes())?;
    }
    out.flush()?;
    anyhow::ensure!(planted, "could not plant a stale read (history too small)");
    Ok(bytes)
}

/// One event line.
#[derive(Clone, Copy)]
struct Line<'a> {
    process: u64,
    kind: &'static str,
    f: Kind,
    key: u64,
    /// None: `nil` / `null`.
    value: Option<&'a str>,
    time_ns: u64,
}

impl Line<'_> {
    /// EDN has no time field: the readers take line order as time, and
    /// lines are written in time order.
    fn write(&self, out: &mut String, format: HistoryFormat) {
        let Line { process, kind, key, time_ns, .. } = *self;
        let f = self.f.name();
        // Writing to a String cannot fail.
        let _ = match (format, self.value) {
            (HistoryFormat::Edn, None) => writeln!(out, "{{:process {process}, :type :{kind}, :f :{f}, :key \"{key}\", :value nil}}"),
            (HistoryFormat::Edn, Some(v)) => writeln!(out, "{{:process {process}, :type :{kind}, :f :{f}, :key \"{key}\", :value \"{v}\"}}"),
            (HistoryFormat::Jsonl, None) => {
                writeln!(out, "{{\"process\":{process},\"type\":\"{kind}\",\"f\":\"{f}\",\"key\":\"{key}\",\"value\":null,\"time_ns\":{time_ns}}}")
            }
            (HistoryFormat::Jsonl, Some(v)) => {
                writeln!(out, "{{\"process\":{process},\"type\":\"{kind}\",\"f\":\"{f}\",\"key\":\"{key}\",\"value\":\"{v}\",\"time_ns\":{time_ns}}}")
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_checkers::read::read_path;
    use faultline_checkers::{check_op_history, CheckConfig, Verdict};

    fn verdict_of(format: HistoryFormat, stale: bool) -> Verdict {
        let dir = std::env::temp_dir().join(format!("faultline-generate-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}-{stale}", format.name()));
        let spec = KvSpec { ops: 4_000, keys: 20, clients: 5, seed: 3, format, stale };
        generate_kv(&path, &spec).unwrap();
        let (_, history) = read_path(&path, 2).unwrap();
        assert_eq!(history.op_count(), 4_000);
        let verdict = check_op_history(&history, &CheckConfig::default()).unwrap().verdict;
        std::fs::remove_file(&path).unwrap();
        verdict
    }

    #[test]
    fn the_generated_history_is_linearizable_and_the_planted_read_is_caught() {
        for format in [HistoryFormat::Edn, HistoryFormat::Jsonl] {
            assert_eq!(verdict_of(format, false), Verdict::Valid, "{}", format.name());
            assert_eq!(verdict_of(format, true), Verdict::Invalid, "{}", format.name());
        }
    }

    #[test]
    fn edn_lines_have_porcupines_exact_shape() {
        let mut line = String::new();
        let invoke = Line { process: 3, kind: "invoke", f: Kind::Get, key: 4, value: None, time_ns: 0 };
        invoke.write(&mut line, HistoryFormat::Edn);
        assert_eq!(line, "{:process 3, :type :invoke, :f :get, :key \"4\", :value nil}\n");
        line.clear();
        Line { kind: "ok", f: Kind::Append, value: Some("x1 x2 "), ..invoke }.write(&mut line, HistoryFormat::Edn);
        assert_eq!(line, "{:process 3, :type :ok, :f :append, :key \"4\", :value \"x1 x2 \"}\n");
    }
}
