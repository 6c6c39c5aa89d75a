//! `set`: a grow-only set of integers; `add x`, `read` → every element.
use std::sync::Arc;

use super::{arc_heap_bytes, is_ok, never_read, unsupported, Model};
use crate::op::Op;
use crate::value::{Func, Val};

#[derive(Debug, Clone, Copy, Default)]
pub struct Set;

/// The state is kept sorted and free of duplicates.
fn insert(state: &Arc<[i64]>, x: i64) -> Arc<[i64]> {
    match state.binary_search(&x) {
        Ok(_) => state.clone(),
        Err(at) => {
            let mut next = Vec::with_capacity(state.len() + 1);
            next.extend_from_slice(&state[..at]);
            next.push(x);
            next.extend_from_slice(&state[at..]);
            Arc::from(next)
        }
    }
}

fn same_elements(state: &[i64], seen: &[i64]) -> bool {
    let mut seen = seen.to_vec();
    seen.sort_unstable();
    seen.dedup();
    seen == state
}

impl Model for Set {
    type State = Arc<[i64]>;

    fn name(&self) -> &'static str {
        "set"
    }

    fn init(&self) -> Self::State {
        Arc::from(Vec::new())
    }

    fn step(&self, state: &Self::State, op: &Op) -> Option<Self::State> {
        match (op.f, &op.input, &op.output) {
            (Func::Add, Val::Int(x), _) => Some(insert(state, *x)),
            (Func::Read, _, _) if !is_ok(op) => Some(state.clone()),
            (Func::Read, _, Val::Ints(seen)) => same_elements(state, seen).then(|| state.clone()),
            (Func::Read, _, Val::Nil) => state.is_empty().then(|| state.clone()),
            _ => None,
        }
    }

    fn validate(&self, op: &Op) -> Result<(), String> {
        match (op.f, &op.input, &op.output) {
            (Func::Add, Val::Int(_), _) => Ok(()),
            (Func::Add, other, _) => Err(format!("add needs an integer, got {other}")),
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

    /// An added element is in every read after it: the set only grows.
    fn never_seen(&self, op: &Op, reads: &[&Op]) -> bool {
        never_read(op, Func::Add, reads)
    }
}
