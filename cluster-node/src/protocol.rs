//! The client protocol: newline-delimited JSON, one request or response per
//! line (see `docs/node-protocol.md`). Parsing is strict and bounded; every
//! malformed input becomes a `bad_request` or `too_large` answer, never a panic.
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::kv::{KvOp, TxnOp};
use crate::raft::ConfChange;

mod txn;

pub use txn::TXN_MOPS_MAX;

pub const KEY_BYTES_MAX: usize = 1024;
pub const VALUE_BYTES_MAX: usize = 1024 * 1024;
/// A longer line gets `too_large` and the connection is closed.
pub const LINE_BYTES_MAX: usize = 2 * 1024 * 1024;

/// A client id is a JSON string or number; both are kept as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientId(pub String);

impl<'de> Deserialize<'de> for ClientId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ClientId, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(ClientId(s)),
            Value::Number(n) => Ok(ClientId(n.to_string())),
            _ => Err(serde::de::Error::custom(
                "client must be a string or a number",
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    id: Option<u64>,
    op: Option<String>,
    key: Option<String>,
    value: Option<String>,
    #[serde(default, deserialize_with = "present_or_null")]
    from: Option<Option<String>>,
    to: Option<String>,
    client: Option<ClientId>,
    seq: Option<u64>,
    /// The node a membership request is about.
    node: Option<u64>,
    /// The micro-ops of a `txn` request.
    txn: Option<Vec<txn::RawMop>>,
}

/// Tells `"from": null` (key absent) apart from a missing `from`.
fn present_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    Get { key: String },
    Write(KvOp),
    /// `txn`: micro-ops applied atomically, in order.
    Txn(Vec<TxnOp>),
    Status,
    /// `member_add` (as a learner), `member_promote`, `member_remove`.
    Change(ConfChange),
    /// `members`: the configuration this node uses.
    Members,
    /// `transfer_leader`: the leader hands over to the voter `node`.
    TransferLeader(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub client: Option<String>,
    pub seq: Option<u64>,
    pub operation: Operation,
}

/// Why a line is not a valid request; `id` is echoed when it could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub id: Option<u64>,
    pub error: ErrorCode,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    TooLarge,
    NotLeader,
    CasMismatch,
    Timeout,
    Stale,
    Overloaded,
    /// The leader refused a membership change (the message says why).
    Refused,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::CasMismatch => "cas_mismatch",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Stale => "stale",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Refused => "refused",
        }
    }
}

pub fn parse_request(line: &[u8]) -> Result<Request, Rejection> {
    let raw: RawRequest = serde_json::from_slice(line).map_err(|e| Rejection {
        id: id_hint(line),
        error: ErrorCode::BadRequest,
        message: format!("malformed request: {e}"),
    })?;
    let id = raw.id;
    let reject = |error: ErrorCode, message: String| Rejection { id, error, message };
    let Some(request_id) = raw.id else {
        return Err(reject(ErrorCode::BadRequest, "missing field `id`".into()));
    };
    check_sizes(&raw).map_err(|m| reject(ErrorCode::TooLarge, m))?;
    let operation =
        operation(raw.op.as_deref(), &raw).map_err(|m| reject(ErrorCode::BadRequest, m))?;
    Ok(Request {
        id: request_id,
        client: raw.client.map(|c| c.0),
        seq: raw.seq,
        operation,
    })
}

fn operation(op: Option<&str>, raw: &RawRequest) -> Result<Operation, String> {
    let key = || {
        raw.key
            .clone()
            .ok_or_else(|| "missing field `key`".to_string())
    };
    let value = || {
        raw.value
            .clone()
            .ok_or_else(|| "missing field `value`".to_string())
    };
    let node = || match raw.node {
        Some(0) => Err("`node` must be a positive node id".to_string()),
        Some(id) => Ok(id),
        None => Err("missing field `node`".to_string()),
    };
    match op {
        Some("get") => Ok(Operation::Get { key: key()? }),
        Some("put") => Ok(Operation::Write(KvOp::Put {
            key: key()?,
            value: value()?,
        })),
        Some("append") => Ok(Operation::Write(KvOp::Append {
            key: key()?,
            value: value()?,
        })),
        Some("delete") => Ok(Operation::Write(KvOp::Delete { key: key()? })),
        Some("cas") => {
            let from = raw
                .from
                .clone()
                .ok_or("missing field `from` (use null for an absent key)")?;
            let to = raw.to.clone().ok_or("missing field `to`")?;
            Ok(Operation::Write(KvOp::Cas {
                key: key()?,
                from,
                to,
            }))
        }
        Some("txn") => Ok(Operation::Txn(txn::txn_ops(raw.txn.as_deref())?)),
        Some("status") => Ok(Operation::Status),
        Some("members") => Ok(Operation::Members),
        Some("member_add") => Ok(Operation::Change(ConfChange::AddLearner(node()?))),
        Some("member_promote") => Ok(Operation::Change(ConfChange::Promote(node()?))),
        Some("member_remove") => Ok(Operation::Change(ConfChange::Remove(node()?))),
        Some("transfer_leader") => Ok(Operation::TransferLeader(node()?)),
        Some(other) => Err(format!("unknown op `{other}`")),
        None => Err("missing field `op`".into()),
    }
}

fn check_sizes(raw: &RawRequest) -> Result<(), String> {
    if raw.key.as_ref().is_some_and(|k| k.len() > KEY_BYTES_MAX) {
        return Err(format!("key longer than {KEY_BYTES_MAX} bytes"));
    }
    let values = [
        raw.value.as_ref(),
        raw.to.as_ref(),
        raw.from.as_ref().and_then(|f| f.as_ref()),
    ];
    if values.iter().flatten().any(|v| v.len() > VALUE_BYTES_MAX) {
        return Err(format!("value longer than {VALUE_BYTES_MAX} bytes"));
    }
    txn::check_sizes(raw.txn.as_deref())
}

/// Best effort: the `id` of a line that failed to parse as a request.
fn id_hint(line: &[u8]) -> Option<u64> {
    let value: Value = serde_json::from_slice(line).ok()?;
    value.get("id")?.as_u64()
}

/// One response line (without the trailing newline).
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    Ok {
        id: u64,
        value: Value,
    },
    Fail {
        id: Option<u64>,
        error: ErrorCode,
        definite: bool,
        detail: Detail,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Detail {
    None,
    Leader(Option<u64>),
    Current(Option<String>),
    /// A txn's failing `cas`: its position among the micro-ops (`index`
    /// on the wire) and the value it found there (`value`).
    CurrentAt {
        position: u64,
        current: Option<String>,
    },
    Message(String),
}

impl Response {
    pub fn rejected(r: Rejection) -> Response {
        Response::Fail {
            id: r.id,
            error: r.error,
            definite: true,
            detail: Detail::Message(r.message),
        }
    }

    pub fn to_line(&self) -> String {
        let mut map = Map::new();
        match self {
            Response::Ok { id, value } => {
                map.insert("id".into(), Value::from(*id));
                map.insert("ok".into(), Value::Bool(true));
                map.insert("value".into(), value.clone());
            }
            Response::Fail {
                id,
                error,
                definite,
                detail,
            } => {
                map.insert("id".into(), id.map(Value::from).unwrap_or(Value::Null));
                map.insert("ok".into(), Value::Bool(false));
                map.insert("error".into(), Value::from(error.as_str()));
                map.insert("definite".into(), Value::Bool(*definite));
                insert_detail(&mut map, detail);
            }
        }
        Value::Object(map).to_string()
    }
}

fn insert_detail(map: &mut Map<String, Value>, detail: &Detail) {
    match detail {
        Detail::None => {}
        Detail::Leader(leader) => {
            if let Some(leader) = leader {
                map.insert("leader".into(), Value::from(*leader));
            }
        }
        Detail::Current(current) => {
            map.insert(
                "value".into(),
                current.clone().map(Value::from).unwrap_or(Value::Null),
            );
        }
        Detail::CurrentAt { position, current } => {
            map.insert("index".into(), Value::from(*position));
            map.insert(
                "value".into(),
                current.clone().map(Value::from).unwrap_or(Value::Null),
            );
        }
        Detail::Message(m) => {
            map.insert("message".into(), Value::from(m.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_op() {
        let r = parse_request(br#"{"id":1,"op":"put","key":"a","value":"x","client":"c","seq":4}"#)
            .unwrap();
        assert_eq!(
            r.operation,
            Operation::Write(KvOp::Put {
                key: "a".into(),
                value: "x".into()
            })
        );
        assert_eq!((r.client.as_deref(), r.seq), (Some("c"), Some(4)));
        let r = parse_request(br#"{"id":2,"op":"cas","key":"a","from":null,"to":"y","client":17}"#)
            .unwrap();
        assert_eq!(
            r.operation,
            Operation::Write(KvOp::Cas {
                key: "a".into(),
                from: None,
                to: "y".into()
            })
        );
        assert_eq!(r.client.as_deref(), Some("17"));
        assert_eq!(
            parse_request(br#"{"id":3,"op":"get","key":"a"}"#)
                .unwrap()
                .operation,
            Operation::Get { key: "a".into() }
        );
        assert_eq!(
            parse_request(br#"{"id":4,"op":"status"}"#)
                .unwrap()
                .operation,
            Operation::Status
        );
        let r = parse_request(br#"{"id":5,"op":"delete","key":"a"}"#).unwrap();
        assert_eq!(
            r.operation,
            Operation::Write(KvOp::Delete { key: "a".into() })
        );
    }

    #[test]
    fn malformed_input_is_rejected_with_a_reason() {
        let cases: [(&[u8], Option<u64>, &str); 6] = [
            (b"not json", None, "malformed"),
            (
                br#"{"id":9,"op":"put","key":"a"}"#,
                Some(9),
                "missing field `value`",
            ),
            (
                br#"{"id":9,"op":"cas","key":"a","to":"b"}"#,
                Some(9),
                "missing field `from`",
            ),
            (br#"{"id":9,"op":"fly","key":"a"}"#, Some(9), "unknown op"),
            (br#"{"op":"get","key":"a"}"#, None, "missing field `id`"),
            (
                br#"{"id":9,"op":"get","key":"a","bogus":1}"#,
                Some(9),
                "malformed",
            ),
        ];
        for (line, id, needle) in cases {
            let rejection = parse_request(line).unwrap_err();
            assert_eq!(rejection.id, id, "{}", String::from_utf8_lossy(line));
            assert_eq!(rejection.error, ErrorCode::BadRequest);
            assert!(
                rejection.message.contains(needle),
                "{} -> {}",
                needle,
                rejection.message
            );
        }
    }

    #[test]
    fn oversized_key_and_value_are_too_large() {
        let key = "k".repeat(KEY_BYTES_MAX + 1);
        let line = format!(r#"{{"id":1,"op":"get","key":"{key}"}}"#);
        assert_eq!(
            parse_request(line.as_bytes()).unwrap_err().error,
            ErrorCode::TooLarge
        );
        let value = "v".repeat(VALUE_BYTES_MAX + 1);
        let line = format!(r#"{{"id":1,"op":"put","key":"k","value":"{value}"}}"#);
        assert_eq!(
            parse_request(line.as_bytes()).unwrap_err().error,
            ErrorCode::TooLarge
        );
        let at_limit = "v".repeat(VALUE_BYTES_MAX);
        let line = format!(r#"{{"id":1,"op":"put","key":"k","value":"{at_limit}"}}"#);
        assert!(parse_request(line.as_bytes()).is_ok());
    }

    #[test]
    fn responses_render_as_documented() {
        let parsed = |r: Response| serde_json::from_str::<Value>(&r.to_line()).unwrap();
        let doc = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert_eq!(
            parsed(Response::Ok {
                id: 7,
                value: Value::Null
            }),
            doc(r#"{"id":7,"ok":true,"value":null}"#)
        );
        let cas = Response::Fail {
            id: Some(7),
            error: ErrorCode::CasMismatch,
            definite: true,
            detail: Detail::Current(None),
        };
        assert_eq!(
            parsed(cas),
            doc(r#"{"id":7,"ok":false,"error":"cas_mismatch","definite":true,"value":null}"#)
        );
        let txn_cas = Response::Fail {
            id: Some(7),
            error: ErrorCode::CasMismatch,
            definite: true,
            detail: Detail::CurrentAt {
                position: 1,
                current: Some("9".into()),
            },
        };
        assert_eq!(
            parsed(txn_cas),
            doc(
                r#"{"id":7,"ok":false,"error":"cas_mismatch","definite":true,"index":1,"value":"9"}"#
            )
        );
        let nl = Response::Fail {
            id: Some(7),
            error: ErrorCode::NotLeader,
            definite: true,
            detail: Detail::Leader(Some(2)),
        };
        assert_eq!(
            parsed(nl),
            doc(r#"{"id":7,"ok":false,"error":"not_leader","definite":true,"leader":2}"#)
        );
        let timeout = Response::Fail {
            id: Some(7),
            error: ErrorCode::Timeout,
            definite: false,
            detail: Detail::None,
        };
        assert_eq!(
            parsed(timeout),
            doc(r#"{"id":7,"ok":false,"error":"timeout","definite":false}"#)
        );
    }
}
