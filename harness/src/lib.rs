//! faultline: Jepsen-style fault-injection tests of replicated systems, as
//! a library. The `faultline` binary is a thin wrapper around it ([`cmd`]),
//! and a Rust team can drive the same tests from a `cargo test` of its own
//! ([`api::Test`]).
//!
//! # One run, as data flowing one way
//! spec (YAML + flags) → [`plan::TestPlan`] (validated once, seed fixed) →
//! [`run::run`], which starts the [`cluster`] behind the fault [`proxy`],
//! runs the clients while the [`nemesis`] injects faults, and streams the
//! history → the history read back once, every [`verdict`] check typed →
//! [`run::RunOutcome`] { results folder, [`results::Results`], timeline } →
//! `results.json`, `summary.txt`, [`report`] (`report.html`, JUnit) and the
//! exit code. `faultline report DIR` loads the same outcome from a folder.
//!
//! Where things live: [`systems`] (one folder per system behind the
//! [`systems::System`] trait, and the registry that names them), [`client`]
//! (the [`client::Client`] trait), [`cluster`] (the supervisor and the
//! [`cluster::Db`] trait), [`nemesis`] (one file per fault family,
//! `scenarios/` for the scripted Raft ones), [`verdict`] (the checks),
//! [`results`], [`report`], [`matrix`] and [`bench`](mod@bench), [`messages`] (every
//! line printed to a person), [`fields`] (spec errors and durations).
//!
//! # Testing your own system from Rust
//! Implement [`systems::System`]: a [`cluster::Db`] that says how to start,
//! wipe and probe one node, and a [`client::Client`] that performs one
//! operation and says how it ended (`ok`, `fail` if it certainly did not
//! happen, `info` if it may have). Bring a generator, a model or checker,
//! and nemeses of your own as you need them; then run the test and assert
//! its verdict. `examples/rust-api` is a complete one, with a server written
//! for it, a planted bug, and a test that catches it.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use faultline::api::Test;
//! use faultline::client::{Client, ClientConfig, ClientFactory, Completion, Outcome};
//! use faultline::cluster::{clear_dir, BoxFuture, ClusterError, Db, NodeEnv, NodeLaunch, PeerRouting};
//! use faultline::systems::{Capabilities, System};
//! use faultline::verdict::LinearizableWith;
//! use faultline_checkers::model::Register;
//! use faultline_checkers::Verdict;
//! use faultline_workloads::{Invocation, WorkloadKind};
//!
//! /// How to run one node of `my-server`.
//! struct MyDb;
//!
//! impl Db for MyDb {
//!     fn name(&self) -> &str { "my-server" }
//!     fn peer_routing(&self) -> PeerRouting { PeerRouting::PerPair }
//!     fn launch(&self, _node: usize, env: &NodeEnv) -> Result<NodeLaunch, ClusterError> {
//!         let args = vec!["--listen".into(), env.client_listen.to_string()];
//!         Ok(NodeLaunch { program: "target/release/my-server".into(), args, env: Vec::new(), files: Vec::new() })
//!     }
//!     fn wipe(&self, _node: usize, env: &NodeEnv) -> Result<(), ClusterError> { clear_dir(&env.data_dir) }
//!     fn log_error_patterns(&self) -> Vec<String> { vec!["panicked at".into()] }
//!     fn is_ready<'a>(&'a self, _node: usize, env: &'a NodeEnv) -> BoxFuture<'a, bool> {
//!         Box::pin(async move { tokio::net::TcpStream::connect(env.client_listen).await.is_ok() })
//!     }
//!     fn leader<'a>(&'a self, _envs: &'a [NodeEnv]) -> BoxFuture<'a, Option<usize>> {
//!         Box::pin(async { None })
//!     }
//! }
//!
//! /// One Jepsen process talking to the cluster (its protocol elided here).
//! struct MyClient { process: u64, config: Arc<ClientConfig> }
//!
//! impl Client for MyClient {
//!     fn process(&self) -> u64 { self.process }
//!     fn become_process(&mut self, process: u64) { self.process = process }
//!     fn invoke<'a>(&'a mut self, invocation: &'a Invocation) -> BoxFuture<'a, Completion> {
//!         Box::pin(async move {
//!             // Send `invocation` to self.config.addrs[...] within
//!             // self.config.op_timeout_ms and map the answer.
//!             Completion { outcome: Outcome::Info("not written yet".into()), node: None }
//!         })
//!     }
//! }
//!
//! #[derive(Debug)]
//! struct MyServer;
//!
//! impl System for MyServer {
//!     fn name(&self) -> &str { "my-server" }
//!     fn capabilities(&self) -> Capabilities { Capabilities::default() }
//!     fn db(&self) -> Result<Arc<dyn Db>, ClusterError> { Ok(Arc::new(MyDb)) }
//!     fn clients(&self) -> ClientFactory {
//!         Arc::new(|config, process| Box::new(MyClient { process, config }) as Box<dyn Client>)
//!     }
//! }
//!
//! let outcome = Test::new("my-server")
//!     .system(MyServer)
//!     .nodes(3)
//!     .seed(1)
//!     .workload(WorkloadKind::Register)
//!     .faults(&["kill", "partition"])
//!     .time_limit(Duration::from_secs(10))
//!     .checker(LinearizableWith { model: Register, budget_ms: 10_000 })
//!     .run()
//!     .expect("the run finishes");
//! assert_eq!(outcome.results.verdict, Some(Verdict::Valid), "{}", outcome.results.summary());
//! ```
//!
//! Exit codes of the binary and [`results::Results::exit_code`]: 0 valid,
//! 1 invalid, 2 unknown, 3 harness error.
pub mod api;
pub mod bench;
pub mod client;
pub mod cluster;
pub mod cmd;
pub mod fields;
pub mod matrix;
pub mod messages;
pub mod nemesis;
pub mod plan;
mod ports;
pub mod proxy;
pub mod replay;
pub mod report;
pub mod results;
pub mod run;
pub mod shrink;
pub mod systems;
pub mod verdict;

/// Exit code for a valid history.
pub const EXIT_VALID: u8 = 0;
/// Exit code for an invalid history.
pub const EXIT_INVALID: u8 = 1;
/// Exit code when the checkers could not decide (budget exhausted).
pub const EXIT_UNKNOWN: u8 = 2;
/// Exit code for a harness error (bad input, I/O failure, crash).
pub const EXIT_HARNESS_ERROR: u8 = 3;
