//! The etcd client: etcd's v3 HTTP/JSON gateway (`/v3/kv/range`, `put`,
//! `txn`; keys and values base64) over `http`, through the proxy.
//!
//! Data model: a register, kv or list key holds one string (integers as
//! decimal, list elements appended as `" <n>"`, as in `text_values`); a set key
//! `k` is the prefix `k/`, one etcd key per element, so an add is a single
//! put. Ranges are linearizable (etcd's default); cas is a txn comparing
//! the value; append is a read then a txn comparing `mod_revision`, retried
//! a bounded number of times. A list-append or rw-register transaction
//! (`f: "txn"`) is a range txn then a txn comparing every read key's
//! `mod_revision` (`txn`); a bank read or transfer (no key) works the same
//! way over `acct-<i>` keys (`bank`). Keyed operations (the liveness
//! probe's `put`, final reads) take the single-key path in every workload.
//! An outcome is `fail` only where nothing can have happened (nothing
//! sent, a read, a txn etcd says did not succeed).
use std::sync::Arc;
use std::time::Duration;

use faultline_workloads::{Invocation, WorkloadKind};
use serde_json::{json, Value};

use super::http::{HttpConnection, HttpError};
use crate::client::{Client, ClientConfig, Completion, Outcome};
use crate::cluster::BoxFuture;
use crate::systems::text_values;

// Declared here rather than in `etcd/mod.rs`, so the transaction code can
// use this module's private connection and trouble types; the files sit
// in `client/`.
mod bank;
mod txn;

/// Read-then-txn rounds of one append, transaction or transfer before it
/// fails (each lost round changed nothing).
const APPEND_ATTEMPTS_MAX: u32 = 8;

/// One Jepsen process's connection to an etcd cluster.
pub struct EtcdClient {
    config: Arc<ClientConfig>,
    process: u64,
    current: usize,
    connection: Option<HttpConnection>,
    /// Whether the current transaction or transfer has a commit in
    /// flight: a timeout before that point fails it, after it is `info`
    /// (only for the operations `marks_commit` names).
    txn_commit_sent: bool,
}

/// Why an exchange ended without an answer.
enum Trouble {
    /// Nothing was sent.
    NotSent(String),
    /// The request may have been applied.
    Unknown(String),
    /// etcd answered with an error (may or may not have been applied).
    Refused(String),
}

impl EtcdClient {
    pub fn new(config: Arc<ClientConfig>, process: u64) -> Self {
        assert!(!config.addrs.is_empty(), "a client needs at least one node address");
        let current = (process % config.addrs.len() as u64) as usize;
        EtcdClient { config, process, current, connection: None, txn_commit_sent: false }
    }

    fn rotate(&mut self) {
        self.current = (self.current + 1) % self.config.addrs.len();
        self.connection = None;
    }

    async fn operate(&mut self, invocation: &Invocation) -> Completion {
        let node = self.current;
        let bound = Duration::from_millis(self.config.op_timeout_ms);
        self.txn_commit_sent = false;
        let outcome = match tokio::time::timeout(bound, self.perform(invocation)).await {
            Ok(outcome) => outcome,
            Err(_) if marks_commit(self.config.kind, invocation) && !self.txn_commit_sent => {
                Err(Trouble::NotSent("timeout before the commit was sent".to_string()))
            }
            Err(_) => Err(Trouble::Unknown("timeout".to_string())),
        };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(trouble) => {
                self.rotate();
                classify(invocation, trouble)
            }
        };
        Completion { outcome, node: Some(node) }
    }

    async fn perform(&mut self, invocation: &Invocation) -> Result<Outcome, Trouble> {
        if invocation.f == faultline_checkers::TXN_F {
            return self.txn(invocation).await;
        }
        if is_bank_operation(self.config.kind, invocation) {
            return self.bank(invocation).await;
        }
        let key = match &invocation.key {
            Some(key) => key.clone(),
            None => return Ok(Outcome::Fail(format!("operation {:?} has no key", invocation.f))),
        };
        let kind = self.config.kind;
        match (invocation.f.as_str(), kind) {
            ("read", WorkloadKind::Set) => self.read_set(&key).await,
            ("read" | "get", _) => {
                let value = self.get(&key).await?.map(|(value, _)| value);
                Ok(decode_read(kind, invocation, value))
            }
            ("write" | "put", _) => {
                let Some(value) = scalar(&invocation.value) else { return Ok(bad_value(invocation)) };
                self.put(&key, &value).await?;
                Ok(Outcome::Ok(invocation.value.clone()))
            }
            ("add", WorkloadKind::Set) => {
                let Some(element) = invocation.value.as_u64() else { return Ok(bad_value(invocation)) };
                self.put(&format!("{key}/{element}"), "").await?;
                Ok(Outcome::Ok(invocation.value.clone()))
            }
            ("cas", _) => self.cas(&key, invocation).await,
            ("append", _) => {
                let suffix = match (kind, &invocation.value) {
                    (WorkloadKind::Kv, Value::String(text)) => text.clone(),
                    (_, Value::Number(n)) => format!(" {n}"),
                    _ => return Ok(bad_value(invocation)),
                };
                self.append(&key, &suffix, invocation).await
            }
            (other, _) => Ok(Outcome::Fail(format!("etcd client: unknown operation {other:?}"))),
        }
    }

    /// The key's value and mod_revision, or None when absent.
    async fn get(&mut self, key: &str) -> Result<Option<(String, String)>, Trouble> {
        let reply = self.call("/v3/kv/range", json!({"key": base64_encode(key.as_bytes())})).await?;
        let Some(kv) = reply["kvs"].as_array().and_then(|kvs| kvs.first()) else { return Ok(None) };
        let value = decode_field(&kv["value"])?;
        let revision = kv["mod_revision"].as_str().unwrap_or("0").to_string();
        Ok(Some((value, revision)))
    }

    async fn put(&mut self, key: &str, value: &str) -> Result<(), Trouble> {
        let body = json!({"key": base64_encode(key.as_bytes()), "value": base64_encode(value.as_bytes())});
        self.call("/v3/kv/put", body).await.map(|_| ())
    }

    async fn read_set(&mut self, key: &str) -> Result<Outcome, Trouble> {
        let prefix = format!("{key}/");
        // '/' + 1 == '0': the range [k/, k0) is exactly the prefix k/.
        let end = format!("{key}0");
        let body = json!({"key": base64_encode(prefix.as_bytes()), "range_end": base64_encode(end.as_bytes()), "keys_only": true});
        let reply = self.call("/v3/kv/range", body).await?;
        let mut elements = Vec::new();
        for kv in reply["kvs"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let name = decode_field(&kv["key"])?;
            let element = name.strip_prefix(&prefix).and_then(|e| e.parse::<u64>().ok());
            match element {
                Some(element) => elements.push(element),
                None => return Ok(Outcome::Fail(format!("unexpected key {name:?} under {prefix:?}"))),
            }
        }
        elements.sort_unstable();
        Ok(Outcome::Ok(json!(elements)))
    }

    async fn cas(&mut self, key: &str, invocation: &Invocation) -> Result<Outcome, Trouble> {
        let pair = invocation.value.as_array().filter(|pair| pair.len() == 2);
        let Some((from, to)) = pair.and_then(|p| Some((scalar(&p[0])?, scalar(&p[1])?))) else {
            return Ok(bad_value(invocation));
        };
        let key64 = base64_encode(key.as_bytes());
        let compare = json!({"key": key64, "target": "VALUE", "result": "EQUAL", "value": base64_encode(from.as_bytes())});
        let put = json!({"request_put": {"key": key64, "value": base64_encode(to.as_bytes())}});
        let reply = self.call("/v3/kv/txn", json!({"compare": [compare], "success": [put]})).await?;
        Ok(txn_outcome(&reply, invocation, "cas: value differs"))
    }

    async fn append(&mut self, key: &str, suffix: &str, invocation: &Invocation) -> Result<Outcome, Trouble> {
        let key64 = base64_encode(key.as_bytes());
        for _ in 0..APPEND_ATTEMPTS_MAX {
            let current = self.get(key).await?;
            // An absent key has create_revision 0; a present one is pinned
            // by its mod_revision.
            let (old, compare) = match current {
                None => (String::new(), json!({"key": key64, "target": "CREATE", "result": "EQUAL", "create_revision": "0"})),
                Some((old, revision)) => {
                    (old, json!({"key": key64, "target": "MOD", "result": "EQUAL", "mod_revision": revision}))
                }
            };
            let new = format!("{old}{suffix}");
            let put = json!({"request_put": {"key": key64, "value": base64_encode(new.as_bytes())}});
            let reply = self.call("/v3/kv/txn", json!({"compare": [compare], "success": [put]})).await?;
            if let Outcome::Ok(value) = txn_outcome(&reply, invocation, "") {
                return Ok(Outcome::Ok(value));
            }
        }
        Ok(Outcome::Fail(format!("append: key changed {APPEND_ATTEMPTS_MAX} times under us")))
    }

    /// POST one gateway call; the reply JSON on HTTP 200.
    async fn call(&mut self, path: &str, body: Value) -> Result<Value, Trouble> {
        self.connect().await?;
        let connection = self.connection.as_mut().ok_or_else(|| Trouble::NotSent("not connected".into()))?;
        let bytes = body.to_string().into_bytes();
        let response = connection.request(path, Some(&bytes)).await.map_err(|error| match error {
            HttpError::Connect { .. } => Trouble::NotSent(error.to_string()),
            HttpError::Exchange(_) => Trouble::Unknown(error.to_string()),
        })?;
        let reply: Value = serde_json::from_slice(&response.body)
            .map_err(|e| Trouble::Unknown(format!("unreadable gateway reply: {e}")))?;
        if response.status == 200 {
            Ok(reply)
        } else {
            let message = reply["error"].as_str().or(reply["message"].as_str()).unwrap_or("error");
            // A learner (a member being added) refuses before doing
            // anything: the write certainly did not happen.
            if message.contains(LEARNER_REFUSAL) {
                return Err(Trouble::NotSent(format!("etcd {}: {message}", response.status)));
            }
            Err(Trouble::Refused(format!("etcd {}: {message}", response.status)))
        }
    }

    /// Open a connection and check that a member answers behind the proxy
    /// (which accepts even when its target is down), so operations sent to
    /// a killed member fail definitely instead of ending in `info`.
    async fn connect(&mut self) -> Result<(), Trouble> {
        if self.connection.as_ref().is_some_and(HttpConnection::is_open) {
            return Ok(());
        }
        let mut connection = HttpConnection::new(self.config.addrs[self.current], self.config.connect_timeout_ms);
        let bound = Duration::from_millis(self.config.connect_timeout_ms);
        match tokio::time::timeout(bound, connection.request("/version", None)).await {
            Ok(Ok(response)) if response.status == 200 => {
                self.connection = Some(connection);
                Ok(())
            }
            Ok(Ok(response)) => Err(Trouble::NotSent(format!("member answered /version with {}", response.status))),
            Ok(Err(error)) => Err(Trouble::NotSent(format!("member not answering: {error}"))),
            Err(_) => Err(Trouble::NotSent("member not answering: timed out".into())),
        }
    }
}

impl Client for EtcdClient {
    fn process(&self) -> u64 {
        self.process
    }

    /// Continue as a fresh process on the next member.
    fn become_process(&mut self, process: u64) {
        self.process = process;
        self.rotate();
    }

    fn invoke<'a>(&'a mut self, invocation: &'a Invocation) -> BoxFuture<'a, Completion> {
        Box::pin(self.operate(invocation))
    }
}

/// What etcd answers a learner's client: nothing was done.
const LEARNER_REFUSAL: &str = "rpc not supported for learner";

/// A bank read or transfer: no key (the liveness probe's `put` and other
/// keyed operations take the single-key path).
fn is_bank_operation(kind: WorkloadKind, invocation: &Invocation) -> bool {
    kind == WorkloadKind::Bank && invocation.key.is_none()
}

/// Whether `perform` sets `txn_commit_sent` when the operation's commit
/// goes out, so a timeout before then certainly changed nothing.
fn marks_commit(kind: WorkloadKind, invocation: &Invocation) -> bool {
    invocation.f == faultline_checkers::TXN_F || (is_bank_operation(kind, invocation) && invocation.f == "transfer")
}

/// Reads change nothing, so any trouble fails them; writes fail only when
/// nothing was sent.
fn classify(invocation: &Invocation, trouble: Trouble) -> Outcome {
    let is_read = matches!(invocation.f.as_str(), "read" | "get");
    match trouble {
        Trouble::NotSent(message) => Outcome::Fail(message),
        Trouble::Unknown(message) | Trouble::Refused(message) if is_read => Outcome::Fail(message),
        Trouble::Unknown(message) | Trouble::Refused(message) => Outcome::Info(message),
    }
}

fn txn_outcome(reply: &Value, invocation: &Invocation, fail_message: &str) -> Outcome {
    if reply["succeeded"] == Value::Bool(true) {
        Outcome::Ok(invocation.value.clone())
    } else {
        Outcome::Fail(fail_message.to_string())
    }
}

fn decode_read(kind: WorkloadKind, invocation: &Invocation, value: Option<String>) -> Outcome {
    let node_value = value.map(Value::String).unwrap_or(Value::Null);
    match text_values::ok_value(kind, invocation, &node_value) {
        Ok(value) => Outcome::Ok(value),
        Err(error) => Outcome::Fail(error.to_string()),
    }
}

fn decode_field(field: &Value) -> Result<String, Trouble> {
    // The gateway omits empty values.
    let text = field.as_str().unwrap_or("");
    let bytes = base64_decode(text).ok_or_else(|| Trouble::Unknown(format!("bad base64 {text:?}")))?;
    String::from_utf8(bytes).map_err(|_| Trouble::Unknown("non-UTF-8 value".into()))
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

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(BASE64[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for byte in text.bytes() {
        let digit = BASE64.iter().position(|&c| c == byte)? as u32;
        acc = (acc << 6) | digit;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_matches_known_values() {
        assert_eq!(base64_encode(b"key"), "a2V5");
        assert_eq!(base64_encode(b"v"), "dg==");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_encode(b""), "");
        for text in ["", "a", "ab", "abc", "abcd", "set-1/17", " 1 2 3"] {
            assert_eq!(base64_decode(&base64_encode(text.as_bytes())).unwrap(), text.as_bytes());
        }
        assert_eq!(base64_decode("a2V5").unwrap(), b"key");
        assert!(base64_decode("a*V5").is_none());
    }

    #[test]
    fn only_reads_and_unsent_requests_fail_definitely() {
        let read = Invocation { f: "read".into(), key: Some("k".into()), value: Value::Null };
        let write = Invocation { f: "write".into(), key: Some("k".into()), value: json!(1) };
        assert!(matches!(classify(&read, Trouble::Unknown("x".into())), Outcome::Fail(_)));
        assert!(matches!(classify(&write, Trouble::Unknown("x".into())), Outcome::Info(_)));
        assert!(matches!(classify(&write, Trouble::Refused("x".into())), Outcome::Info(_)));
        assert!(matches!(classify(&write, Trouble::NotSent("x".into())), Outcome::Fail(_)));
    }

    #[test]
    fn bank_operations_have_no_key_and_only_transactions_and_transfers_mark_their_commit() {
        let transfer = Invocation { f: "transfer".into(), key: None, value: json!({"from": 0, "to": 1, "amount": 2}) };
        let read = Invocation { f: "read".into(), key: None, value: json!([0, 1]) };
        let probe = Invocation { f: "put".into(), key: Some("faultline-liveness".into()), value: json!("probe-1") };
        let txn = Invocation { f: "txn".into(), key: None, value: json!([["r", 1, null]]) };
        assert!(is_bank_operation(WorkloadKind::Bank, &transfer));
        assert!(is_bank_operation(WorkloadKind::Bank, &read));
        assert!(!is_bank_operation(WorkloadKind::Bank, &probe), "the probe is a single-key put");
        assert!(!is_bank_operation(WorkloadKind::Register, &read));
        assert!(marks_commit(WorkloadKind::Bank, &transfer));
        assert!(!marks_commit(WorkloadKind::Bank, &read), "a read fails on any trouble anyway");
        assert!(!marks_commit(WorkloadKind::Bank, &probe));
        assert!(marks_commit(WorkloadKind::RwRegister, &txn));
        assert!(!marks_commit(WorkloadKind::Register, &probe));
    }

    #[test]
    fn txn_success_is_read_from_the_reply() {
        let cas = Invocation { f: "cas".into(), key: Some("k".into()), value: json!([1, 2]) };
        assert_eq!(txn_outcome(&json!({"succeeded": true}), &cas, "no"), Outcome::Ok(json!([1, 2])));
        assert_eq!(txn_outcome(&json!({"header": {}}), &cas, "no"), Outcome::Fail("no".into()));
    }
}
