//! How the core's outcomes and refusals become response lines.
use serde_json::Value;

use crate::kv::Outcome;
use crate::protocol::{Detail, ErrorCode, Response};
use crate::raft::ProposeError;

pub(super) fn fail(id: u64, error: ErrorCode, definite: bool, detail: Detail) -> Response {
    Response::Fail {
        id: Some(id),
        error,
        definite,
        detail,
    }
}

pub(super) fn refusal(id: u64, e: ProposeError) -> Response {
    match e {
        ProposeError::NotLeader { leader } => {
            fail(id, ErrorCode::NotLeader, true, Detail::Leader(leader))
        }
        other => fail(
            id,
            ErrorCode::Overloaded,
            true,
            Detail::Message(other.to_string()),
        ),
    }
}

pub(super) fn outcome_response(id: u64, outcome: Outcome) -> Response {
    match outcome {
        Outcome::Ok(value) => Response::Ok {
            id,
            value: value.map(Value::from).unwrap_or(Value::Null),
        },
        Outcome::CasMismatch(current) => {
            fail(id, ErrorCode::CasMismatch, true, Detail::Current(current))
        }
        Outcome::Stale => {
            let message =
                "seq is older than this client's last applied seq; its outcome is unknown"
                    .to_string();
            fail(id, ErrorCode::Stale, false, Detail::Message(message))
        }
        Outcome::Values(values) => Response::Ok {
            id,
            value: values
                .into_iter()
                .map(|v| v.map_or(Value::Null, Value::from))
                .collect(),
        },
        Outcome::TxnCasMismatch { position, current } => {
            let detail = Detail::CurrentAt { position, current };
            fail(id, ErrorCode::CasMismatch, true, detail)
        }
    }
}
