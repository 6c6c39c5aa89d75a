//! The faultline-node client: newline-delimited JSON over TCP through the
//! proxy, one request in flight, leader hints followed, and every operation
//! bounded by `op_timeout_ms` and `redirects_max`.
use std::time::Duration;

use faultline_workloads::{Invocation, WorkloadKind};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::client::{Client, ClientConfig, Completion, Outcome};
use crate::cluster::BoxFuture;

use super::codec;

/// The node's own line limit is 2 MiB; allow a little more for framing.
const RESPONSE_LINE_BYTES_MAX: u64 = 3 * 1024 * 1024;
/// Responses to other ids (there should be none) skipped before giving up.
const STRAY_RESPONSES_MAX: u32 = 16;

struct Connection {
    node: usize,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// One Jepsen process's connection to the cluster.
pub struct NodeClient {
    config: std::sync::Arc<ClientConfig>,
    process: u64,
    current: usize,
    connection: Option<Connection>,
    seq: u64,
    request_id: u64,
}

/// How one attempt ended.
enum Attempt {
    /// The node answered (anything but "not the leader"): the response
    /// and the node that gave it.
    Answer(Value, usize),
    /// No answer: how the operation ended.
    Done(Completion),
    Redirect(Option<usize>),
}

impl NodeClient {
    pub fn new(config: std::sync::Arc<ClientConfig>, process: u64) -> Self {
        assert!(!config.addrs.is_empty(), "a client needs at least one node address");
        let current = (process % config.addrs.len() as u64) as usize;
        NodeClient { config, process, current, connection: None, seq: 0, request_id: 0 }
    }

    pub(super) fn op_timeout_ms(&self) -> u64 {
        self.config.op_timeout_ms
    }

    fn rotate(&mut self) {
        self.current = (self.current + 1) % self.config.addrs.len();
    }

    async fn operate(&mut self, invocation: &Invocation) -> Completion {
        // Bank reads and transfers take several requests; anything else
        // (the liveness probe's put) is a plain request.
        if self.config.kind == WorkloadKind::Bank && matches!(invocation.f.as_str(), "read" | "transfer") {
            return self.bank(invocation).await;
        }
        let body = match codec::request(self.config.kind_of(invocation), invocation) {
            Ok(body) => body,
            Err(error) => return Completion { outcome: Outcome::Fail(error.to_string()), node: None },
        };
        let deadline = Duration::from_millis(self.config.op_timeout_ms);
        match self.round_trip(&body, deadline).await {
            Ok((response, node)) => self.interpret(invocation, &response, node),
            Err(completion) => completion,
        }
    }

    /// One request, under a fresh `seq`, with leader redirects followed,
    /// bounded by `deadline`: the node's answer (ok or not) and which node
    /// gave it, or how the request ended without one.
    pub(super) async fn round_trip(&mut self, body: &Value, deadline: Duration) -> Result<(Value, usize), Completion> {
        self.seq += 1;
        match tokio::time::timeout(deadline, self.attempts(body)).await {
            Ok(answered) => answered,
            Err(_) => {
                let node = self.connection.take().map(|c| c.node);
                self.rotate();
                Err(Completion { outcome: Outcome::Info("timeout".to_string()), node })
            }
        }
    }

    async fn attempts(&mut self, body: &Value) -> Result<(Value, usize), Completion> {
        for _ in 0..=self.config.redirects_max {
            match self.attempt(body).await {
                Attempt::Answer(response, node) => return Ok((response, node)),
                Attempt::Done(completion) => return Err(completion),
                Attempt::Redirect(Some(leader)) if leader < self.config.addrs.len() => {
                    self.move_to(leader);
                }
                Attempt::Redirect(_) => {
                    self.rotate();
                    self.connection = None;
                    // No leader known: give an election a moment.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Err(Completion { outcome: Outcome::Fail("not_leader".to_string()), node: None })
    }

    fn move_to(&mut self, node: usize) {
        if self.current != node {
            self.current = node;
            self.connection = None;
        }
    }

    async fn attempt(&mut self, body: &Value) -> Attempt {
        let node = self.current;
        if let Err(error) = self.connect().await {
            self.rotate();
            // Nothing was sent: the operation did not happen.
            return Attempt::Done(Completion { outcome: Outcome::Fail(format!("connect: {error}")), node: Some(node) });
        }
        self.request_id += 1;
        let mut request = body.clone();
        request["id"] = Value::from(self.request_id);
        request["client"] = Value::from(self.process);
        request["seq"] = Value::from(self.seq);
        match self.exchange(&request).await {
            Ok(response) if response["ok"] != Value::Bool(true) && response["error"] == "not_leader" => {
                // Node ids are 1-based on the wire.
                let leader = response["leader"].as_u64().and_then(|id| usize::try_from(id).ok()?.checked_sub(1));
                Attempt::Redirect(leader)
            }
            Ok(response) => Attempt::Answer(response, node),
            Err(error) => {
                self.connection = None;
                self.rotate();
                Attempt::Done(Completion { outcome: Outcome::Info(error), node: Some(node) })
            }
        }
    }

    /// Connect to the current node and check, with a `status` request,
    /// that the node behind the proxy answers. The proxy accepts even when
    /// its target is down; without this check every operation sent to a
    /// killed node would end in a reset, an `info` the checkers must treat
    /// as possibly applied, which multiplies their search for nothing.
    async fn connect(&mut self) -> Result<(), String> {
        if self.connection.is_some() {
            return Ok(());
        }
        let addr = self.config.addrs[self.current];
        let timeout = Duration::from_millis(self.config.connect_timeout_ms);
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => return Err("timed out".to_string()),
        };
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        self.connection = Some(Connection { node: self.current, reader: BufReader::new(reader), writer });
        self.request_id += 1;
        let status = serde_json::json!({"id": self.request_id, "op": "status"});
        match tokio::time::timeout(timeout, self.exchange(&status)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => {
                self.connection = None;
                Err(format!("node not answering: {error}"))
            }
            Err(_) => {
                self.connection = None;
                Err("node not answering: timed out".to_string())
            }
        }
    }

    /// Send one request and read its response. An error here means the
    /// request may have been delivered: the caller records `info`.
    async fn exchange(&mut self, request: &Value) -> Result<Value, String> {
        let connection = self.connection.as_mut().ok_or("not connected")?;
        let mut line = request.to_string();
        line.push('\n');
        connection.writer.write_all(line.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
        let id = request["id"].clone();
        for _ in 0..STRAY_RESPONSES_MAX {
            let mut buffer = Vec::new();
            let read = (&mut connection.reader)
                .take(RESPONSE_LINE_BYTES_MAX)
                .read_until(b'\n', &mut buffer)
                .await
                .map_err(|e| format!("receive: {e}"))?;
            if read == 0 {
                return Err("connection closed".to_string());
            }
            if buffer.last() != Some(&b'\n') {
                return Err("response line too long".to_string());
            }
            let response: Value =
                serde_json::from_slice(&buffer).map_err(|e| format!("unreadable response: {e}"))?;
            if response["id"] == id {
                return Ok(response);
            }
        }
        Err("no response with our id".to_string())
    }

    fn interpret(&self, invocation: &Invocation, response: &Value, node: usize) -> Completion {
        let done = |outcome| Completion { outcome, node: Some(node) };
        if response["ok"] == Value::Bool(true) {
            return match codec::ok_value(self.config.kind_of(invocation), invocation, &response["value"]) {
                Ok(value) => done(Outcome::Ok(value)),
                Err(error) => done(Outcome::Info(error.to_string())),
            };
        }
        done(refusal(response))
    }
}

/// A node's answer that is not ok: definite (nothing happened) or not.
pub(super) fn refusal(response: &Value) -> Outcome {
    let error = response["error"].as_str().unwrap_or("unknown").to_string();
    if response["definite"] == Value::Bool(true) {
        Outcome::Fail(error)
    } else {
        Outcome::Info(error)
    }
}

impl Client for NodeClient {
    fn process(&self) -> u64 {
        self.process
    }

    /// Continue as a fresh process (after an `info`): a new connection to
    /// the new process's home node (`process % nodes`), as a fresh Jepsen
    /// process would open. Process numbers only grow, so successive
    /// processes visit every node, the ones a partition cut off included:
    /// a client must not learn to avoid a node the harness cut, or it could
    /// never see what that node answers.
    fn become_process(&mut self, process: u64) {
        self.process = process;
        self.connection = None;
        self.current = (process % self.config.addrs.len() as u64) as usize;
    }

    fn invoke<'a>(&'a mut self, invocation: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(self.operate(invocation))
    }
}
