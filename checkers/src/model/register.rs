//! `register`: one integer register, initially nil; `read` and `write`.
use super::{is_ok, unsupported, Model};
use crate::op::Op;
use crate::value::{Func, Val};

/// State: `None` = nil, never written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Register;

pub(crate) fn as_register_value(val: &Val) -> Result<Option<i64>, String> {
    match val {
        Val::Nil => Ok(None),
        Val::Int(i) => Ok(Some(*i)),
        other => Err(format!("expected an integer or null, got {other}")),
    }
}

pub(crate) fn step_read_write(state: &Option<i64>, op: &Op) -> Option<Option<i64>> {
    match op.f {
        Func::Read => {
            if !is_ok(op) {
                return Some(*state);
            }
            let seen = as_register_value(&op.output).ok()?;
            (seen == *state).then_some(*state)
        }
        Func::Write => Some(as_register_value(&op.input).ok()?),
        _ => None,
    }
}

pub(crate) fn validate_read_write(model: &str, op: &Op) -> Result<(), String> {
    match op.f {
        Func::Read if is_ok(op) => as_register_value(&op.output).map(|_| ()),
        Func::Read => Ok(()),
        Func::Write => match op.input {
            Val::Int(_) => Ok(()),
            ref other => Err(format!("write needs an integer value, got {other}")),
        },
        _ => Err(unsupported(model, op)),
    }
}

impl Model for Register {
    type State = Option<i64>;

    fn name(&self) -> &'static str {
        "register"
    }

    fn init(&self) -> Self::State {
        None
    }

    fn step(&self, state: &Self::State, op: &Op) -> Option<Self::State> {
        step_read_write(state, op)
    }

    fn validate(&self, op: &Op) -> Result<(), String> {
        validate_read_write(self.name(), op)
    }

    fn is_read_only(&self, op: &Op) -> bool {
        op.f == Func::Read
    }

    fn describe_state(&self, state: &Self::State) -> String {
        state.map_or("nil".to_string(), |v| v.to_string())
    }

    /// A written value is what every read returns until the next write.
    fn never_seen(&self, op: &Op, reads: &[&Op]) -> bool {
        op.f == Func::Write && reads.iter().all(|read| read.output != op.input)
    }
}
