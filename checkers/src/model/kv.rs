//! `kv`: one string value per key (the search partitions by key);
//! `get`, `put`, `append` (string concatenation). A missing key reads `""`.
use super::kv_state::KvState;
use super::{is_ok, unsupported, Model};
use crate::op::Op;
use crate::value::{Func, Val};

#[derive(Debug, Clone, Copy, Default)]
pub struct Kv;

fn as_str(val: &Val) -> Option<&str> {
    match val {
        Val::Str(s) => Some(s),
        // A read of a missing key may be reported as null.
        Val::Nil => Some(""),
        _ => None,
    }
}

impl Model for Kv {
    type State = KvState;

    fn name(&self) -> &'static str {
        "kv"
    }

    fn init(&self) -> Self::State {
        KvState::default()
    }

    fn step(&self, state: &Self::State, op: &Op) -> Option<Self::State> {
        match (op.f, &op.input) {
            (Func::Get, _) if !is_ok(op) => Some(state.clone()),
            (Func::Get, _) => state.is(as_str(&op.output)?).then(|| state.clone()),
            (Func::Put, Val::Str(s)) => Some(KvState::put(s)),
            (Func::Append, Val::Str(s)) => Some(state.append(s)),
            _ => None,
        }
    }

    fn validate(&self, op: &Op) -> Result<(), String> {
        match op.f {
            Func::Get if is_ok(op) && as_str(&op.output).is_none() => {
                Err(format!("get must return a string, got {}", op.output))
            }
            Func::Get => Ok(()),
            Func::Put | Func::Append => match op.input {
                Val::Str(_) => Ok(()),
                ref other => Err(format!("{} needs a string value, got {other}", op.f.name())),
            },
            _ => Err(unsupported(self.name(), op)),
        }
    }

    fn is_read_only(&self, op: &Op) -> bool {
        op.f == Func::Get
    }

    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }

    fn state_heap_bytes(&self, state: &Self::State) -> usize {
        state.fresh_heap_bytes()
    }

    /// Until the next `put`, every read starts with a put's value and
    /// contains an append's, literally (an empty one counts as seen).
    fn never_seen(&self, op: &Op, reads: &[&Op]) -> bool {
        let Val::Str(written) = &op.input else { return false };
        let shows: fn(&str, &str) -> bool = match op.f {
            Func::Put => |read, written| read.starts_with(written),
            Func::Append => |read, written| read.contains(written),
            _ => return false,
        };
        reads.iter().all(|read| as_str(&read.output).is_some_and(|read| !shows(read, written)))
    }
}
