//! `cas-register`: `register` plus `cas [from, to]`.
//!
//! As in Porcupine's etcd model, a cas that reports failure (outcome
//! `Failed`, from a Jepsen `:fail :cas`) is an observation: the register did
//! not hold `from` at that instant. A cas of unknown outcome takes effect
//! exactly when the register holds `from` at the point it is linearized.
use super::register::{step_read_write, validate_read_write};
use super::Model;
use crate::op::Op;
use crate::value::{Func, Outcome, Val};

#[derive(Debug, Clone, Copy, Default)]
pub struct CasRegister;

fn cas_args(val: &Val) -> Option<(i64, i64)> {
    match val {
        Val::Ints(xs) if xs.len() == 2 => Some((xs[0], xs[1])),
        _ => None,
    }
}

impl Model for CasRegister {
    type State = Option<i64>;

    fn name(&self) -> &'static str {
        "cas-register"
    }

    fn init(&self) -> Self::State {
        None
    }

    fn step(&self, state: &Self::State, op: &Op) -> Option<Self::State> {
        if op.f != Func::Cas {
            return step_read_write(state, op);
        }
        let (from, to) = cas_args(&op.input)?;
        let matches = *state == Some(from);
        match (op.outcome, matches) {
            (Outcome::Ok, true) | (Outcome::Unknown, true) => Some(Some(to)),
            (Outcome::Failed, false) | (Outcome::Unknown, false) => Some(*state),
            _ => None,
        }
    }

    fn validate(&self, op: &Op) -> Result<(), String> {
        if op.f != Func::Cas {
            return validate_read_write(self.name(), op);
        }
        match cas_args(&op.input) {
            Some(_) => Ok(()),
            None => Err(format!("cas needs [from, to] integers, got {}", op.input)),
        }
    }

    fn is_read_only(&self, op: &Op) -> bool {
        op.f == Func::Read
    }

    /// An acknowledged cas found `from`: it saw the state as a read does.
    fn observes(&self, op: &Op) -> bool {
        matches!(op.f, Func::Read | Func::Cas)
    }

    fn describe_state(&self, state: &Self::State) -> String {
        state.map_or("nil".to_string(), |v| v.to_string())
    }
}
