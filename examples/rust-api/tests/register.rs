//! faultline's Rust API on a system it knows nothing about: `regserver`
//! (this package's binary), driven from `cargo test` with a `System`, a
//! `Db`, a `Client`, a generator, a model and a nemesis written here.
//!
//! The correct server must come out valid under crashes and stalls; the
//! same server with its planted bug (`--bug ack-before-write`: writes are
//! acknowledged before they reach the disk) must come out invalid, with the
//! counterexample in the report. If the second test ever passed with a
//! valid verdict, faultline would have missed a bug it was built to find.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use faultline::api::Test;
use faultline::client::{Client, ClientConfig, ClientFactory, Completion, Outcome};
use faultline::cluster::{clear_dir, BoxFuture, Cluster, ClusterError, Db, NodeEnv, NodeLaunch, PeerRouting};
use faultline::nemesis::{Effect, Fault, FaultFamily, Nemesis, NemesisError};
use faultline::systems::{Capabilities, System};
use faultline::verdict::{CheckDetails, LinearizableWith};
use faultline_checkers::{Func, Model, Op, Outcome as OpOutcome, Val, Verdict};
use faultline_workloads::{Context, Generator, Invocation, Next, WorkloadKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

// ---- The system: how to run a regserver node, and how to talk to it ----

#[derive(Debug)]
struct RegServer {
    bug: bool,
}

impl System for RegServer {
    fn name(&self) -> &str {
        "regserver"
    }

    /// One server: no leader to name, no replicas to compare.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    fn db(&self) -> Result<Arc<dyn Db>, ClusterError> {
        Ok(Arc::new(RegServerDb { binary: PathBuf::from(env!("CARGO_BIN_EXE_regserver")), bug: self.bug }))
    }

    fn clients(&self) -> ClientFactory {
        Arc::new(|config: Arc<ClientConfig>, process| Box::new(RegClient::new(config, process)) as Box<dyn Client>)
    }
}

struct RegServerDb {
    binary: PathBuf,
    bug: bool,
}

impl Db for RegServerDb {
    fn name(&self) -> &str {
        "regserver"
    }

    /// One node: no peers to route.
    fn peer_routing(&self) -> PeerRouting {
        PeerRouting::PerPair
    }

    fn launch(&self, _node: usize, env: &NodeEnv) -> Result<NodeLaunch, ClusterError> {
        let mut args = vec![
            "--listen".to_string(),
            env.client_listen.to_string(),
            "--data-dir".to_string(),
            env.data_dir.display().to_string(),
        ];
        if self.bug {
            args.extend(["--bug".to_string(), "ack-before-write".to_string()]);
        }
        Ok(NodeLaunch { program: self.binary.clone(), args, env: Vec::new(), files: Vec::new() })
    }

    fn wipe(&self, _node: usize, env: &NodeEnv) -> Result<(), ClusterError> {
        clear_dir(&env.data_dir)
    }

    fn log_error_patterns(&self) -> Vec<String> {
        vec!["panicked at".to_string()]
    }

    fn is_ready<'a>(&'a self, _node: usize, env: &'a NodeEnv) -> BoxFuture<'a, bool> {
        Box::pin(async move { TcpStream::connect(env.client_listen).await.is_ok() })
    }

    fn leader<'a>(&'a self, _envs: &'a [NodeEnv]) -> BoxFuture<'a, Option<usize>> {
        Box::pin(async { None })
    }
}

/// One Jepsen process: one connection, one request at a time.
struct RegClient {
    config: Arc<ClientConfig>,
    process: u64,
    connection: Option<BufReader<TcpStream>>,
}

impl RegClient {
    fn new(config: Arc<ClientConfig>, process: u64) -> RegClient {
        RegClient { config, process, connection: None }
    }

    fn request(invocation: &Invocation) -> Option<String> {
        let key = invocation.key.as_deref()?;
        let value = &invocation.value;
        match invocation.f.as_str() {
            "read" => Some(format!("read {key}")),
            "write" => Some(format!("write {key} {}", value.as_i64()?)),
            "cas" => Some(format!("cas {key} {} {}", value.get(0)?.as_i64()?, value.get(1)?.as_i64()?)),
            _ => None,
        }
    }

    /// Sends one request; `Err(true)` when it may have been applied.
    async fn exchange(&mut self, addr: SocketAddr, line: &str) -> Result<String, (bool, String)> {
        if self.connection.is_none() {
            let connect = TcpStream::connect(addr);
            let bound = Duration::from_millis(self.config.connect_timeout_ms);
            let stream = match tokio::time::timeout(bound, connect).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => return Err((false, format!("connect: {error}"))),
                Err(_) => return Err((false, "connect: timed out".into())),
            };
            self.connection = Some(BufReader::new(stream));
        }
        let Some(connection) = self.connection.as_mut() else { return Err((false, "not connected".into())) };
        if let Err(error) = connection.get_mut().write_all(format!("{line}\n").as_bytes()).await {
            return Err((true, format!("send: {error}")));
        }
        let mut answer = String::new();
        match connection.take(4096).read_line(&mut answer).await {
            Ok(0) => Err((true, "connection closed".into())),
            Ok(_) => Ok(answer.trim().to_string()),
            Err(error) => Err((true, format!("receive: {error}"))),
        }
    }

    async fn perform(&mut self, invocation: &Invocation) -> Outcome {
        let Some(line) = RegClient::request(invocation) else {
            return Outcome::Fail(format!("regserver cannot do {invocation:?}"));
        };
        let addr = self.config.addrs[0];
        let bound = Duration::from_millis(self.config.op_timeout_ms);
        let answer = match tokio::time::timeout(bound, self.exchange(addr, &line)).await {
            Ok(answer) => answer,
            Err(_) => Err((true, "timeout".into())),
        };
        let is_read = invocation.f == "read";
        match answer {
            Ok(answer) if answer == "ok" => Outcome::Ok(invocation.value.clone()),
            Ok(answer) if answer == "ok nil" => Outcome::Ok(serde_json::Value::Null),
            Ok(answer) if answer == "fail" => Outcome::Fail("cas mismatch".into()),
            Ok(answer) => match answer.strip_prefix("ok ").and_then(|value| value.parse::<i64>().ok()) {
                Some(value) => Outcome::Ok(value.into()),
                None => Outcome::Fail(answer),
            },
            // A read changes nothing: it failed. A write that may have
            // been applied is unknown.
            Err((maybe, error)) => {
                self.connection = None;
                if maybe && !is_read {
                    Outcome::Info(error)
                } else {
                    Outcome::Fail(error)
                }
            }
        }
    }
}

impl Client for RegClient {
    fn process(&self) -> u64 {
        self.process
    }

    fn become_process(&mut self, process: u64) {
        self.process = process;
        self.connection = None;
    }

    fn invoke<'a>(&'a mut self, invocation: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(async move { Completion { outcome: self.perform(invocation).await, node: Some(0) } })
    }
}

// ---- The workload: our own generator and our own model ----

const KEYS: [&str; 4] = ["w", "x", "y", "z"];

/// Reads, writes of increasing values and compare-and-sets on two keys;
/// pure and seeded, as faultline requires (time comes in `ctx`).
struct Registers {
    rng: ChaCha8Rng,
    next_value: i64,
}

impl Generator for Registers {
    fn next(&mut self, _ctx: &Context) -> Next {
        let key = Some(KEYS[self.rng.random_range(0..KEYS.len())].to_string());
        let roll = self.rng.random_range(0..10);
        self.next_value += 1;
        let (f, value) = match roll {
            0..=4 => ("read", serde_json::Value::Null),
            5..=8 => ("write", self.next_value.into()),
            _ => ("cas", serde_json::json!([self.next_value - 1, self.next_value])),
        };
        Next::Invoke(Invocation { f: f.to_string(), key, value })
    }
}

/// A compare-and-set register, written here as any user would: nil at
/// first; a read sees the value; a write sets it; an acknowledged cas
/// found `from` and set `to`.
struct CasRegister;

impl Model for CasRegister {
    type State = Option<i64>;

    fn name(&self) -> &'static str {
        "regserver-register"
    }

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(&self, state: &Option<i64>, op: &Op) -> Option<Option<i64>> {
        let int = |value: &Val| match value {
            Val::Int(value) => Some(Some(*value)),
            Val::Nil => Some(None),
            _ => None,
        };
        match (op.f, &op.input) {
            (Func::Read, _) if op.outcome != OpOutcome::Ok => Some(*state),
            (Func::Read, _) => (int(&op.output)? == *state).then_some(*state),
            (Func::Write, value) => int(value),
            (Func::Cas, Val::Ints(pair)) if pair.len() == 2 => (*state == Some(pair[0])).then_some(Some(pair[1])),
            _ => None,
        }
    }

    fn validate(&self, op: &Op) -> Result<(), String> {
        match op.f {
            Func::Read | Func::Write | Func::Cas => Ok(()),
            other => Err(format!("regserver has no {}", other.name())),
        }
    }

    fn is_read_only(&self, op: &Op) -> bool {
        op.f == Func::Read
    }
}

// ---- A nemesis of our own: stall the server for a while ----

struct Stall;

impl Nemesis for Stall {
    fn handles(&self) -> Vec<FaultFamily> {
        vec![FaultFamily::Custom("stall")]
    }

    fn invoke<'a>(&'a mut self, _fault: Fault, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            cluster.pause(0)?;
            Ok(serde_json::json!({ "paused": ["n1"] }))
        })
    }

    fn heal<'a>(&'a mut self, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            cluster.resume(0)?;
            Ok(serde_json::json!({ "resumed": ["n1"] }))
        })
    }
}

// ---- The tests ----

fn store() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rust-api-store")
}

fn test(name: &str, bug: bool, seed: u64) -> Test {
    Test::new(name)
        .system(RegServer { bug })
        .nodes(1)
        .seed(seed)
        .store(store())
        .time_limit(Duration::from_secs(6))
        .rate(100.0)
        .concurrency(4)
        .workload(WorkloadKind::CasRegister)
        .faults(&["kill"])
        .fault_durations((Duration::from_millis(300), Duration::from_millis(600)), (Duration::from_millis(300), Duration::from_millis(700)))
        .generator(|seed| Box::new(Registers { rng: ChaCha8Rng::seed_from_u64(seed), next_value: 0 }))
        .checker(LinearizableWith { model: CasRegister, budget_ms: 10_000 })
        .nemesis("stall", |_seed| Box::new(Stall))
        .liveness_write(|attempt| Invocation {
            f: "write".into(),
            key: Some("liveness".into()),
            value: (attempt as i64).into(),
        })
}

/// `REGSERVER_PLANT_BUG=1 cargo test` runs this test against the server
/// with its bug planted, to see it fail as a user's test would.
#[test]
fn the_correct_server_is_linearizable_under_crashes_and_stalls() {
    let planted = std::env::var_os("REGSERVER_PLANT_BUG").is_some();
    let outcome = test("regserver-correct", planted, 7).run().expect("the run finishes");
    let results = &outcome.results;
    assert_eq!(results.verdict, Some(Verdict::Valid), "{}", results.summary());
    assert!(results.counts.ok > 100, "the clients got answers: {:?}", results.counts);
    assert!(results.counts.nemesis >= 4, "faults were injected: {:?}", results.counts);
    assert!(outcome.dir.join("report.html").is_file());
}

#[test]
fn the_planted_bug_loses_acknowledged_writes_and_faultline_says_so() {
    let outcome = test("regserver-ack-before-write", true, 7).run().expect("the run finishes");
    let results = &outcome.results;
    assert_eq!(results.verdict, Some(Verdict::Invalid), "the bug went unseen: {}", results.summary());
    let check = results.checks.checkers.iter().find(|check| check.name == "linearizable-regserver-register").expect("our checker ran");
    let CheckDetails::Linearizable(result) = &check.details else { panic!("typed details: {:?}", check.details) };
    let key = result.keys.iter().find(|key| key.verdict == Verdict::Invalid).expect("an invalid key");
    assert!(key.counterexample.is_some(), "the report can explain it");
    let html = std::fs::read_to_string(outcome.dir.join("report.html")).unwrap();
    assert!(html.contains("could not be ordered"), "the counterexample is in the report");
}
