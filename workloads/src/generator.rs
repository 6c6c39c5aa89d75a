//! The `Generator` trait and the context the interpreter passes in.
//!
//! A generator is a pure, seeded producer of client operations in the Jepsen
//! style: `next` returns an invocation, `Pending` (ask again later) or `Done`,
//! and `update` lets it react to completions. Time arrives in the
//! [`Context`]; a generator never reads a clock, sleeps or does I/O, so the
//! same seed and the same contexts give the same operations.
use faultline_checkers::Event;
use serde::{Deserialize, Serialize};

/// What the interpreter knows when it asks for the next operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Nanoseconds since the start of the phase this generator serves.
    pub time_ns: u64,
    /// The client process asking.
    pub process: u64,
}

/// One operation a client should perform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// `read`, `write`, `cas`, `add` or `append`.
    pub f: String,
    pub key: Option<String>,
    /// The argument: an integer, a string, `[from, to]` for cas, `null` for reads.
    pub value: serde_json::Value,
}

/// The answer to `next`.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Invoke(Invocation),
    /// Nothing to do now; ask again later.
    Pending,
    /// Exhausted: this generator will never produce another operation.
    Done,
}

/// A pure producer of operations; see the module docs.
pub trait Generator: Send {
    fn next(&mut self, ctx: &Context) -> Next;
    /// Called with every completion (and invocation) the clients record.
    fn update(&mut self, _event: &Event) {}
}

impl<G: Generator + ?Sized> Generator for Box<G> {
    fn next(&mut self, ctx: &Context) -> Next {
        (**self).next(ctx)
    }
    fn update(&mut self, event: &Event) {
        (**self).update(event)
    }
}
