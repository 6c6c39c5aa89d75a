//! The Redis + Sentinel client: asks the sentinels (the nodes' client
//! addresses) for the current primary, talks RESP to that primary, and asks
//! again after any error, which is how it follows a failover.
//!
//! Data model: set → `SADD`/`SMEMBERS`, append → `RPUSH`/`LRANGE`,
//! register → `SET`/`GET`, cas → a Lua compare-and-set, kv → `SET`/`GET`/
//! `APPEND`. An outcome is `fail` only where Redis says nothing happened
//! (`READONLY`, `LOADING`, `MASTERDOWN`, a cas that did not match), nothing
//! was sent, or for reads.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use faultline_workloads::{Invocation, WorkloadKind};
use serde_json::{json, Value};

use super::resp::{Reply, RespConnection, RespError};
use crate::client::{Client, ClientConfig, Completion, Outcome};
use crate::cluster::BoxFuture;

use super::db::MASTER_NAME;

const CAS_SCRIPT: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2]) return 1 else return 0 end";
/// Error prefixes with which Redis refuses a command before executing it.
const REFUSALS: [&str; 4] = ["READONLY", "LOADING", "MASTERDOWN", "NOREPLICAS"];

/// One Jepsen process's view of a Redis + Sentinel deployment.
pub struct RedisClient {
    config: Arc<ClientConfig>,
    process: u64,
    /// The sentinel asked first next time.
    sentinel: usize,
    primary: Option<RespConnection>,
}

enum Trouble {
    NotSent(String),
    Unknown(String),
}

impl From<RespError> for Trouble {
    fn from(error: RespError) -> Self {
        match error {
            RespError::Connect { .. } => Trouble::NotSent(error.to_string()),
            RespError::Exchange(_) => Trouble::Unknown(error.to_string()),
        }
    }
}

impl RedisClient {
    pub fn new(config: Arc<ClientConfig>, process: u64) -> Self {
        assert!(!config.addrs.is_empty(), "a client needs at least one sentinel address");
        let sentinel = (process % config.addrs.len() as u64) as usize;
        RedisClient { config, process, sentinel, primary: None }
    }

    async fn operate(&mut self, invocation: &Invocation) -> Completion {
        let bound = Duration::from_millis(self.config.op_timeout_ms);
        let result = match tokio::time::timeout(bound, self.perform(invocation)).await {
            Ok(result) => result,
            Err(_) => Err(Trouble::Unknown("timeout".into())),
        };
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(trouble) => {
                // The primary may have changed: ask the sentinels again.
                self.primary = None;
                self.sentinel = (self.sentinel + 1) % self.config.addrs.len();
                let is_read = matches!(invocation.f.as_str(), "read" | "get");
                match trouble {
                    Trouble::NotSent(message) => Outcome::Fail(message),
                    Trouble::Unknown(message) if is_read => Outcome::Fail(message),
                    Trouble::Unknown(message) => Outcome::Info(message),
                }
            }
        };
        if matches!(&outcome, Outcome::Fail(message) if is_refusal(message)) {
            self.primary = None;
        }
        Completion { outcome, node: None }
    }

    async fn perform(&mut self, invocation: &Invocation) -> Result<Outcome, Trouble> {
        let Some(key) = invocation.key.clone() else {
            return Ok(Outcome::Fail(format!("operation {:?} has no key", invocation.f)));
        };
        let kind = self.config.kind;
        let text = scalar(&invocation.value);
        let k = key.as_bytes();
        let reply = match (invocation.f.as_str(), kind) {
            ("read", WorkloadKind::Set) => self.command(&[b"SMEMBERS", k]).await?,
            ("read", WorkloadKind::Append) => self.command(&[b"LRANGE", k, b"0", b"-1"]).await?,
            ("read" | "get", _) => self.command(&[b"GET", k]).await?,
            ("add", _) | ("append", WorkloadKind::Append) | ("write" | "put", _) | ("append", WorkloadKind::Kv) => {
                let Some(value) = text else { return Ok(bad_value(invocation)) };
                let verb: &[u8] = match (invocation.f.as_str(), kind) {
                    ("add", _) => b"SADD",
                    ("append", WorkloadKind::Append) => b"RPUSH",
                    ("append", _) => b"APPEND",
                    _ => b"SET",
                };
                self.command(&[verb, k, value.as_bytes()]).await?
            }
            ("cas", _) => {
                let pair = invocation.value.as_array().filter(|p| p.len() == 2);
                let Some((from, to)) = pair.and_then(|p| Some((scalar(&p[0])?, scalar(&p[1])?))) else {
                    return Ok(bad_value(invocation));
                };
                let reply = self.command(&[b"EVAL", CAS_SCRIPT.as_bytes(), b"1", k, from.as_bytes(), to.as_bytes()]).await?;
                if reply == Reply::Integer(0) {
                    return Ok(Outcome::Fail("cas: value differs".into()));
                }
                reply
            }
            (other, _) => return Ok(Outcome::Fail(format!("redis client: unknown operation {other:?}"))),
        };
        Ok(interpret(kind, invocation, reply))
    }

    /// Run one command on the primary, finding it first if needed.
    async fn command(&mut self, args: &[&[u8]]) -> Result<Reply, Trouble> {
        if self.primary.is_none() {
            let addr = self.ask_sentinels().await?;
            self.primary = Some(RespConnection::connect(addr, self.config.connect_timeout_ms).await?);
        }
        let primary = self.primary.as_mut().ok_or_else(|| Trouble::NotSent("no primary".into()))?;
        Ok(primary.command(args).await?)
    }

    /// The primary's address from the first sentinel that knows it.
    async fn ask_sentinels(&mut self) -> Result<SocketAddr, Trouble> {
        let sentinels = self.config.addrs.len();
        let mut last = String::from("no sentinel asked");
        for _ in 0..sentinels {
            let addr = self.config.addrs[self.sentinel];
            match primary_from_sentinel(addr, self.config.connect_timeout_ms).await {
                Ok(primary) => return Ok(primary),
                Err(error) => last = error,
            }
            self.sentinel = (self.sentinel + 1) % sentinels;
        }
        Err(Trouble::NotSent(format!("no sentinel named a primary: {last}")))
    }
}

impl Client for RedisClient {
    fn process(&self) -> u64 {
        self.process
    }

    fn become_process(&mut self, process: u64) {
        self.process = process;
        self.primary = None;
        self.sentinel = (self.sentinel + 1) % self.config.addrs.len();
    }

    fn invoke<'a>(&'a mut self, invocation: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(self.operate(invocation))
    }
}

/// `SENTINEL get-master-addr-by-name`, bounded by `timeout_ms`.
pub async fn primary_from_sentinel(sentinel: SocketAddr, timeout_ms: u64) -> Result<SocketAddr, String> {
    let ask = async {
        let mut connection = RespConnection::connect(sentinel, timeout_ms).await.map_err(|e| e.to_string())?;
        let reply = connection
            .command(&[b"SENTINEL", b"get-master-addr-by-name", MASTER_NAME.as_bytes()])
            .await
            .map_err(|e| e.to_string())?;
        let Reply::Array(Some(items)) = &reply else { return Err(format!("sentinel replied {reply:?}")) };
        let host = items.first().and_then(Reply::text).unwrap_or_default();
        let port = items.get(1).and_then(Reply::text).unwrap_or_default();
        format!("{host}:{port}").parse::<SocketAddr>().map_err(|_| format!("sentinel named {host}:{port}"))
    };
    tokio::time::timeout(Duration::from_millis(timeout_ms), ask).await.unwrap_or_else(|_| Err("timed out".into()))
}

fn is_refusal(message: &str) -> bool {
    REFUSALS.iter().any(|prefix| message.starts_with(prefix))
}

fn interpret(kind: WorkloadKind, invocation: &Invocation, reply: Reply) -> Outcome {
    let is_read = matches!(invocation.f.as_str(), "read" | "get");
    match reply {
        Reply::Error(message) if is_refusal(&message) || is_read => Outcome::Fail(message),
        Reply::Error(message) => Outcome::Info(message),
        reply if is_read => match decode_read(kind, &reply) {
            Some(value) => Outcome::Ok(value),
            None => Outcome::Fail(format!("unexpected read reply {reply:?}")),
        },
        _ => Outcome::Ok(invocation.value.clone()),
    }
}

fn decode_read(kind: WorkloadKind, reply: &Reply) -> Option<Value> {
    match (kind, reply) {
        (WorkloadKind::Set | WorkloadKind::Append, Reply::Array(items)) => {
            let items = items.as_deref().unwrap_or_default();
            let mut elements = items.iter().map(|item| item.text()?.parse::<u64>().ok()).collect::<Option<Vec<_>>>()?;
            if kind == WorkloadKind::Set {
                elements.sort_unstable();
            }
            Some(json!(elements))
        }
        (WorkloadKind::Kv, Reply::Bulk(None)) => Some(Value::Null),
        (WorkloadKind::Kv, bulk) => Some(json!(bulk.text()?)),
        (WorkloadKind::Register | WorkloadKind::CasRegister, Reply::Bulk(None)) => Some(Value::Null),
        (WorkloadKind::Register | WorkloadKind::CasRegister, bulk) => Some(json!(bulk.text()?.parse::<i64>().ok()?)),
        _ => None,
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn bad_value(invocation: &Invocation) -> Outcome {
    Outcome::Fail(format!("operation {:?} has a bad value {}", invocation.f, invocation.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: &str, value: Value) -> Invocation {
        Invocation { f: f.into(), key: Some("k".into()), value }
    }

    #[test]
    fn read_replies_decode_per_workload() {
        let bulk = |s: &str| Reply::Bulk(Some(s.as_bytes().to_vec()));
        let members = Reply::Array(Some(vec![bulk("5"), bulk("2")]));
        assert_eq!(interpret(WorkloadKind::Set, &op("read", Value::Null), members.clone()), Outcome::Ok(json!([2, 5])));
        assert_eq!(interpret(WorkloadKind::Append, &op("read", Value::Null), members), Outcome::Ok(json!([5, 2])));
        assert_eq!(interpret(WorkloadKind::Register, &op("read", Value::Null), bulk("4")), Outcome::Ok(json!(4)));
        assert_eq!(interpret(WorkloadKind::Kv, &op("get", Value::Null), Reply::Bulk(None)), Outcome::Ok(Value::Null));
        assert!(matches!(interpret(WorkloadKind::Register, &op("read", Value::Null), bulk("x")), Outcome::Fail(_)));
    }

    #[test]
    fn only_refusals_fail_writes_definitely() {
        let add = op("add", json!(3));
        assert_eq!(interpret(WorkloadKind::Set, &add, Reply::Integer(1)), Outcome::Ok(json!(3)));
        let readonly = Reply::Error("READONLY You can't write against a read only replica.".into());
        assert!(matches!(interpret(WorkloadKind::Set, &add, readonly), Outcome::Fail(_)));
        assert!(matches!(interpret(WorkloadKind::Set, &add, Reply::Error("ERR oom".into())), Outcome::Info(_)));
    }
}
