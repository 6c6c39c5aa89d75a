//! The external client: a program of the user's, one per Jepsen process,
//! speaking a line protocol on its stdin and stdout (see
//! harness/docs/adapters.md):
//!
//! - started as `/bin/sh -c <command>` with `FAULTLINE_NODES` (the proxied
//!   client addresses, comma-separated, node 0 first), `FAULTLINE_PROCESS`
//!   and `FAULTLINE_WORKLOAD` in its environment, and, when transactions
//!   are mixed into the workload, `FAULTLINE_TRANSACTIONS` (their kind);
//! - per operation, one JSON line in: `{"id":1,"process":0,"f":"write",
//!   "key":"reg-0","value":3}` (a transaction, `f: "txn"`, has no key);
//! - one JSON line out: `{"id":1,"type":"ok","value":3}`, `type` one of
//!   `ok`, `fail` (certainly not applied), `info` (unknown), with an
//!   optional `error` string, an optional `node` (which node served it: a
//!   0-based index or `"n1"`), and, for `ok` reads, the value read; for an
//!   `ok` transaction, its micro-operations with the reads filled in.
//!
//! Anything else (a timeout, a crash, a bad line) is `info` for writes and
//! `fail` for reads, and the program is killed and started afresh for the
//! next operation. A program that answered `ok` or `fail` keeps running,
//! with its session; after `info` the next operation comes from a fresh
//! process and so a fresh program. It runs in its own process group, killed (and reaped by
//! tokio) when the client is dropped, and dies with the harness
//! (`setpriv --pdeathsig`, when installed).
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use faultline_workloads::Invocation;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::client::{Client, ClientConfig, Completion, Outcome};
use crate::cluster::BoxFuture;

/// Longest answer line accepted.
const LINE_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Lines with another id skipped before the answer counts as lost.
const STRAY_LINES_MAX: u32 = 16;

/// How to start the external program.
#[derive(Debug, Clone)]
pub struct ExternalCommand {
    /// Run with `/bin/sh -c`.
    pub command: String,
    /// Working directory; None: the harness's own (relative paths in a
    /// spec are relative to where faultline runs).
    pub dir: Option<PathBuf>,
}

struct Program {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Program {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // The whole group: the shell and whatever it started.
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.start_kill();
    }
}

pub struct ExternalClient {
    config: Arc<ClientConfig>,
    command: Arc<ExternalCommand>,
    process: u64,
    program: Option<Program>,
    request_id: u64,
}

impl ExternalClient {
    pub fn new(config: Arc<ClientConfig>, command: Arc<ExternalCommand>, process: u64) -> Self {
        ExternalClient { config, command, process, program: None, request_id: 0 }
    }

    async fn operate(&mut self, invocation: &Invocation) -> Completion {
        self.request_id += 1;
        let mut request = json!({
            "id": self.request_id,
            "process": self.process,
            "f": invocation.f,
            "value": invocation.value,
        });
        // A transaction has none: its micro-operations name their keys.
        if let Some(key) = &invocation.key {
            request["key"] = json!(key);
        }
        let bound = Duration::from_millis(self.config.op_timeout_ms);
        let (outcome, node, answered) = match tokio::time::timeout(bound, self.exchange(&request)).await {
            Ok(Ok(answer)) => {
                let (outcome, node) = interpret(invocation, &answer, self.config.addrs.len());
                (outcome, node, true)
            }
            Ok(Err(Sent::No(error))) => (Outcome::Fail(error), None, false),
            Ok(Err(Sent::Maybe(error))) => (unknown(invocation, error), None, false),
            Err(_) => (unknown(invocation, "timeout".to_string()), None, false),
        };
        // A program that answered `ok` or `fail` is in a known state and
        // keeps its session, as a Jepsen client does. One that timed out,
        // exited or wrote a bad line is not: start afresh next time. After
        // `info` the runner moves on to a fresh process, and so a fresh
        // program, anyway.
        if !answered {
            self.program = None;
        }
        Completion { outcome, node }
    }

    async fn exchange(&mut self, request: &Value) -> Result<Value, Sent> {
        if self.program.is_none() {
            self.program = Some(self.spawn().map_err(Sent::No)?);
        }
        let program = self.program.as_mut().ok_or_else(|| Sent::No("no program".into()))?;
        let mut line = request.to_string();
        line.push('\n');
        program.stdin.write_all(line.as_bytes()).await.map_err(|e| Sent::No(format!("client program stdin: {e}")))?;
        program.stdin.flush().await.map_err(|e| Sent::Maybe(format!("client program stdin: {e}")))?;
        for _ in 0..STRAY_LINES_MAX {
            let mut buffer = Vec::new();
            let read = (&mut program.stdout)
                .take(LINE_BYTES_MAX)
                .read_until(b'\n', &mut buffer)
                .await
                .map_err(|e| Sent::Maybe(format!("client program stdout: {e}")))?;
            if read == 0 {
                return Err(Sent::Maybe("client program exited".into()));
            }
            let answer: Value = serde_json::from_slice(&buffer)
                .map_err(|e| Sent::Maybe(format!("client program wrote a bad line: {e}")))?;
            if answer["id"] == request["id"] {
                return Ok(answer);
            }
        }
        Err(Sent::Maybe("client program never answered this id".into()))
    }

    fn spawn(&self) -> Result<Program, String> {
        let nodes: Vec<String> = self.config.addrs.iter().map(|a| a.to_string()).collect();
        let setpriv = PathBuf::from("/usr/bin/setpriv");
        let mut command = if setpriv.is_file() {
            let mut command = Command::new(setpriv);
            command.args(["--pdeathsig", "KILL", "/bin/sh", "-c", &self.command.command]);
            command
        } else {
            let mut command = Command::new("/bin/sh");
            command.args(["-c", &self.command.command]);
            command
        };
        if let Some(dir) = &self.command.dir {
            command.current_dir(dir);
        }
        if let Some(transactions) = self.config.transactions {
            command.env("FAULTLINE_TRANSACTIONS", transactions.name());
        }
        command
            .env("FAULTLINE_NODES", nodes.join(","))
            .env("FAULTLINE_PROCESS", self.process.to_string())
            .env("FAULTLINE_WORKLOAD", self.config.kind.name())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| format!("cannot start client program: {e}"))?;
        let stdin = child.stdin.take().ok_or("client program has no stdin")?;
        let stdout = child.stdout.take().ok_or("client program has no stdout")?;
        Ok(Program { child, stdin, stdout: BufReader::new(stdout) })
    }
}

impl Client for ExternalClient {
    fn process(&self) -> u64 {
        self.process
    }

    /// A fresh process gets a fresh program.
    fn become_process(&mut self, process: u64) {
        self.process = process;
        self.program = None;
    }

    fn invoke<'a>(&'a mut self, invocation: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(self.operate(invocation))
    }
}

enum Sent {
    /// The operation never reached the program.
    No(String),
    Maybe(String),
}

/// A lost answer: a read (or a transaction of reads only) changed
/// nothing, so it failed; anything else may have happened.
fn unknown(invocation: &Invocation, error: String) -> Outcome {
    let reads_only = |mops: &Vec<Value>| mops.iter().all(|mop| mop[0] == "r");
    let read = match invocation.f.as_str() {
        "read" | "get" => true,
        faultline_checkers::TXN_F => invocation.value.as_array().is_some_and(reads_only),
        _ => false,
    };
    if read {
        Outcome::Fail(error)
    } else {
        Outcome::Info(error)
    }
}

/// An `ok` transaction's answer: the same micro-operations in the same
/// order, each read filled in with a list. Any other answer is `info`: the
/// transaction happened, but what it read is not known.
fn committed(invocation: &Invocation, value: &Value) -> Outcome {
    let (Some(asked), Some(answered)) = (invocation.value.as_array(), value.as_array()) else {
        return Outcome::Info(format!("client program answered a transaction ok with value {value}"));
    };
    let filled_in = |(asked, answered): (&Value, &Value)| match asked[0].as_str() {
        Some("r") => answered[0] == "r" && answered[1] == asked[1] && answered[2].is_array(),
        _ => answered == asked,
    };
    if asked.len() != answered.len() || !asked.iter().zip(answered).all(filled_in) {
        return Outcome::Info(format!("client program answered {} ok with {value}", invocation.value));
    }
    Outcome::Ok(value.clone())
}

/// The outcome of an answer, and the node that served it when the answer
/// names one (`"node": 0`, a 0-based index, or `"node": "n1"`, the
/// history's name) among the `nodes` of the cluster.
fn interpret(invocation: &Invocation, answer: &Value, nodes: usize) -> (Outcome, Option<usize>) {
    let error = answer["error"].as_str().unwrap_or("").to_string();
    let outcome = match answer["type"].as_str() {
        Some("ok") if matches!(invocation.f.as_str(), "read" | "get") => Outcome::Ok(answer["value"].clone()),
        Some("ok") if invocation.f == faultline_checkers::TXN_F => committed(invocation, &answer["value"]),
        Some("ok") => Outcome::Ok(invocation.value.clone()),
        Some("fail") => Outcome::Fail(if error.is_empty() { "fail".into() } else { error }),
        Some("info") => Outcome::Info(if error.is_empty() { "info".into() } else { error }),
        _ => return (unknown(invocation, format!("client program answered {answer}")), None),
    };
    let node = match &answer["node"] {
        Value::Number(index) => index.as_u64().and_then(|index| usize::try_from(index).ok()),
        Value::String(name) => name.strip_prefix('n').and_then(|id| id.parse::<usize>().ok()).and_then(|id| id.checked_sub(1)),
        _ => None,
    };
    (outcome, node.filter(|node| *node < nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: &str, value: Value) -> Invocation {
        Invocation { f: f.into(), key: Some("k".into()), value }
    }

    #[test]
    fn answers_map_to_outcomes_and_name_their_node() {
        let outcome = |f: &str, value: Value, answer: Value| interpret(&op(f, value), &answer, 3).0;
        assert_eq!(outcome("read", Value::Null, json!({"type":"ok","value":[1,2]})), Outcome::Ok(json!([1, 2])));
        assert_eq!(outcome("write", json!(3), json!({"type":"ok"})), Outcome::Ok(json!(3)));
        assert_eq!(outcome("write", json!(3), json!({"type":"fail","error":"no"})), Outcome::Fail("no".into()));
        assert_eq!(outcome("write", json!(3), json!({"type":"info"})), Outcome::Info("info".into()));
        assert!(matches!(outcome("write", json!(3), json!({"type":"maybe"})), Outcome::Info(_)));
        assert!(matches!(outcome("read", Value::Null, json!({})), Outcome::Fail(_)));
        let node = |answer: Value| interpret(&op("write", json!(3)), &answer, 3).1;
        assert_eq!(node(json!({"type":"ok","node":2})), Some(2));
        assert_eq!(node(json!({"type":"fail","node":"n1"})), Some(0));
        assert_eq!(node(json!({"type":"ok","node":3})), None, "no node 3 in a cluster of 3");
        assert_eq!(node(json!({"type":"ok","node":"x"})), None);
        assert_eq!(node(json!({"type":"ok"})), None);
    }

    #[test]
    fn a_transaction_is_ok_only_with_its_reads_filled_in() {
        let txn = Invocation { f: "txn".into(), key: None, value: json!([["append", 3, 1], ["r", 3, null]]) };
        let outcome = |answer: Value| interpret(&txn, &answer, 3).0;
        let done = json!([["append", 3, 1], ["r", 3, [1]]]);
        assert_eq!(outcome(json!({"type":"ok","value":done})), Outcome::Ok(done));
        assert!(matches!(outcome(json!({"type":"ok"})), Outcome::Info(_)), "no value");
        assert!(matches!(outcome(json!({"type":"ok","value":txn.value})), Outcome::Info(_)), "the read not filled in");
        assert!(matches!(outcome(json!({"type":"ok","value":[["append",3,2],["r",3,[2]]]})), Outcome::Info(_)), "another append");
        assert!(matches!(outcome(json!({"type":"ok","value":[["append",3,1]]})), Outcome::Info(_)), "a micro-op missing");
        assert_eq!(outcome(json!({"type":"fail"})), Outcome::Fail("fail".into()));
        assert!(matches!(unknown(&txn, "timeout".into()), Outcome::Info(_)), "its append may have happened");
        let reads = Invocation { value: json!([["r", 3, null], ["r", 4, null]]), ..txn };
        assert!(matches!(unknown(&reads, "timeout".into()), Outcome::Fail(_)), "reads alone change nothing");
    }
}
