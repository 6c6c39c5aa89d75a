//! How the workloads' values live in a system that stores one string per
//! key (faultline-node, etcd): register integers as decimal strings, kv
//! values as they are, set and list elements appended as `" <n>"`. A read
//! of such a string gives back the history's value.
use faultline_workloads::{Invocation, WorkloadKind};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("operation {0:?} has no key")]
    NoKey(String),
    #[error("operation {f:?} has a bad value {value}")]
    BadValue { f: String, value: String },
    #[error("unknown operation {0:?}")]
    UnknownFunction(String),
    #[error("the node returned {0:?}, which is not a {1}")]
    BadResult(String, &'static str),
}

/// The history value of a successful completion, from the node's `value`.
pub fn ok_value(kind: WorkloadKind, invocation: &Invocation, node_value: &Value) -> Result<Value, CodecError> {
    if invocation.f != "read" && invocation.f != "get" {
        // Writes, cas, adds and appends complete with their argument.
        return Ok(invocation.value.clone());
    }
    let text = match node_value {
        Value::Null => None,
        Value::String(text) => Some(text.as_str()),
        other => return Err(CodecError::BadResult(other.to_string(), "string or null")),
    };
    match kind {
        // A bank read is of every account at once: its client builds it.
        WorkloadKind::Bank => Err(CodecError::UnknownFunction(format!("{} of one key in a bank", invocation.f))),
        WorkloadKind::Kv => Ok(json!(text)),
        WorkloadKind::Register | WorkloadKind::CasRegister | WorkloadKind::RwRegister => match text {
            None => Ok(Value::Null),
            Some(text) => text
                .parse::<i64>()
                .map(|n| json!(n))
                .map_err(|_| CodecError::BadResult(text.to_string(), "integer")),
        },
        WorkloadKind::Set | WorkloadKind::Append | WorkloadKind::ListAppend => {
            let elements: Result<Vec<u64>, CodecError> = text
                .unwrap_or("")
                .split_whitespace()
                .map(|item| item.parse::<u64>().map_err(|_| CodecError::BadResult(item.to_string(), "list of integers")))
                .collect();
            Ok(json!(elements?))
        }
    }
}
