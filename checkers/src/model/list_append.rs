//! `list-append`: one list of integers per key; `append x`, `read` → the
//! whole list, in order.
use std::sync::Arc;

use super::{arc_heap_bytes, is_ok, never_read, unsupported, Model};
use crate::op::Op;
use crate::value::{Func, Val};

#[derive(Debug, Clone, Copy, Default)]
pub struct ListAppend;

impl Model for ListAppend {
    type State = Arc<[i64]>;

    fn name(&self) -> &'static str {
        "list-append"
    }

    fn init(&self) -> Self::State {
        Arc::from(Vec::new())
    }

    fn step(&self, state: &Self::State, op: &Op) -> Option<Self::State> {
        match (op.f, &op.input, &op.output) {
            (Func::Append, Val::Int(x), _) => {
                let mut next = state.to_vec();
                next.push(*x);
                Some(Arc::from(next))
            }
            (Func::Read, _, _) if !is_ok(op) => Some(state.clone()),
            (Func::Read, _, Val::Ints(seen)) => (**seen == **state).then(|| state.clone()),
            (Func::Read, _, Val::Nil) => state.is_empty().then(|| state.clone()),
            _ => None,
        }
    }

    fn validate(&self, op: &Op) -> Result<(), String> {
        match (op.f, &op.input, &op.output) {
            (Func::Append, Val::Int(_), _) => Ok(()),
            (Func::Append, other, _) => Err(format!("append needs an integer, got {other}")),
            (Func::Read, _, _) if !is_ok(op) => Ok(()),
            (Func::Read, _, Val::Ints(_) | Val::Nil) => Ok(()),
            (Func::Read, _, other) => Err(format!("read must return an array of integers, got {other}")),
            _ => Err(unsupported(self.name(), op)),
        }
    }

    fn is_read_only(&self, op: &Op) -> bool {
        op.f == Func::Read
    }

    fn state_heap_bytes(&self, state: &Self::State) -> usize {
        arc_heap_bytes(state, state.len(), std::mem::size_of::<i64>())
    }

    /// An appended element is in every read after it: the list only grows.
    fn never_seen(&self, op: &Op, reads: &[&Op]) -> bool {
        never_read(op, Func::Append, reads)
    }
}
