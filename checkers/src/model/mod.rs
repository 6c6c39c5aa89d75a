//! Sequential specifications ("models") the linearizability search checks
//! against. A model is a small trait implementation: an initial state, a pure
//! `step`, and a state type with equality and hash (the search caches
//! `(linearized set, state)` pairs). To add one, implement [`Model`] and call
//! [`crate::check_with`] (or [`crate::check_history_with`]) with it; a
//! function name that is not built in arrives as [`Func::Other`], and
//! `Func::parse("inc")` gives the value to compare it with.
use std::borrow::Cow;
use std::fmt::Debug;
use std::hash::Hash;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::CheckError;
use crate::op::Op;
use crate::value::{Func, Outcome, Val};

mod cas_register;
mod kv;
mod kv_state;
mod list_append;
mod register;
mod set;

pub use cas_register::CasRegister;
pub use kv::Kv;
pub use list_append::ListAppend;
pub use register::Register;
pub use set::Set;

/// A sequential specification of one key's object.
pub trait Model: Sync {
    /// Not `Send`: a state never leaves the search thread that made it.
    type State: Clone + Eq + Hash + Debug;

    fn name(&self) -> &'static str;
    fn init(&self) -> Self::State;
    /// The state after `op`, or `None` if `op` cannot happen in `state` with
    /// the result it reported. Must not depend on anything but its inputs.
    fn step(&self, state: &Self::State, op: &Op) -> Option<Self::State>;
    /// Rejects operations this model does not understand, before the search.
    fn validate(&self, op: &Op) -> Result<(), String>;
    /// True if `op` never changes the state: such an operation with an
    /// unknown outcome constrains nothing and is left out of the search.
    fn is_read_only(&self, op: &Op) -> bool;
    /// True if `op`, acknowledged, is evidence of the state: a key whose
    /// history holds none (every read failed, or there were none) says
    /// nothing about linearizability, and is `unknown`, never `valid`.
    /// Defaults to the read-only operations.
    fn observes(&self, op: &Op) -> bool {
        self.is_read_only(op)
    }
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
    /// Heap bytes `state` holds that nothing else holds yet, so the memory
    /// budget covers states that grow (strings, sets, lists), not only their
    /// `size_of`. The search calls it once for each state it stores, just
    /// before keeping its copy, so it must be cheap. An allocation shared
    /// with a value already alive (an `Arc` clone of the previous state after
    /// a read, or of an operation's value) is counted elsewhere or belongs to
    /// the history: report 0 for it (`Arc::strong_count(state) > 1`).
    /// Defaults to 0, right for states without heap parts.
    fn state_heap_bytes(&self, _state: &Self::State) -> usize {
        0
    }
    /// True if the write `op`, were it to take effect, would show in every
    /// acknowledged read until another write hid it, and none of `reads`
    /// (this key's acknowledged [`Model::observes`] operations) shows it.
    /// Then a linearization holding `op` stays one without it, and the
    /// search leaves it out when its outcome is unknown: each such crashed
    /// write would otherwise double the configurations to explore. Must
    /// answer false when unsure; defaults to false.
    fn never_seen(&self, _op: &Op, _reads: &[&Op]) -> bool {
        false
    }
}

/// Heap bytes of an `Arc` holding `len` items of `T`, or 0 when the
/// allocation is already shared (see [`Model::state_heap_bytes`]).
pub(crate) fn arc_heap_bytes<T: ?Sized>(arc: &std::sync::Arc<T>, len: usize, item_bytes: usize) -> usize {
    if std::sync::Arc::strong_count(arc) > 1 {
        return 0;
    }
    // The strong and weak counts sit in front of the data.
    2 * std::mem::size_of::<usize>() + len * item_bytes
}

/// The name of the model a history was checked with: a built-in's
/// [`ModelKind::name`] or a user model's [`Model::name`]. Serializes as the
/// bare name. A name read back (from a results file) is owned: it may name a
/// user model this process has never seen, so it cannot be `&'static`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ModelName(pub Cow<'static, str>);

impl ModelName {
    /// The name of a model of this process, without copying it.
    pub const fn new(name: &'static str) -> Self {
        ModelName(Cow::Borrowed(name))
    }

    pub fn name(&self) -> &str {
        &self.0
    }
}

impl From<ModelKind> for ModelName {
    fn from(kind: ModelKind) -> Self {
        ModelName::new(kind.name())
    }
}

impl PartialEq<ModelKind> for ModelName {
    fn eq(&self, kind: &ModelKind) -> bool {
        self.0 == kind.name()
    }
}

impl std::fmt::Display for ModelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The built-in models, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    Register,
    CasRegister,
    Kv,
    Set,
    ListAppend,
}

impl ModelKind {
    pub const ALL: [ModelKind; 5] = [
        ModelKind::Register,
        ModelKind::CasRegister,
        ModelKind::Kv,
        ModelKind::Set,
        ModelKind::ListAppend,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::Set => "set",
            ModelKind::ListAppend => "list-append",
        }
    }

    /// Guesses the model from the functions a history uses.
    pub fn guess(funcs: &[Func], first_append_is_string: bool) -> Result<ModelKind, CheckError> {
        let has = |f: Func| funcs.contains(&f);
        if funcs.is_empty() {
            return Err(CheckError::NoOps);
        }
        if has(Func::Get) || has(Func::Put) || (has(Func::Append) && first_append_is_string) {
            return Ok(ModelKind::Kv);
        }
        if has(Func::Add) {
            return Ok(ModelKind::Set);
        }
        if has(Func::Append) {
            return Ok(ModelKind::ListAppend);
        }
        if has(Func::Cas) {
            return Ok(ModelKind::CasRegister);
        }
        Ok(ModelKind::Register)
    }
}

impl FromStr for ModelKind {
    type Err = CheckError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ModelKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| CheckError::UnknownModel(name.to_string()))
    }
}

/// Shared by the models: an `ok` result is required to compare outputs.
/// For models whose state only grows: `op`, a `grows` of an integer, is in
/// none of `reads` (a nil read holds nothing).
pub(crate) fn never_read(op: &Op, grows: Func, reads: &[&Op]) -> bool {
    let Val::Int(element) = op.input else { return false };
    op.f == grows
        && reads.iter().all(|read| match &read.output {
            Val::Ints(seen) => !seen.contains(&element),
            Val::Nil => true,
            _ => false,
        })
}

pub(crate) fn is_ok(op: &Op) -> bool {
    op.outcome == Outcome::Ok
}

pub(crate) fn unsupported(model: &str, op: &Op) -> String {
    format!("function {} is not part of the {model} model", op.f.name())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::value::Val;

    fn op(f: Func, input: Val, output: Val, outcome: Outcome) -> Op {
        Op { process: 0, f, input, output, outcome, call_ns: 0, return_ns: 1, line: 1 }
    }

    fn ok(f: Func, input: Val, output: Val) -> Op {
        op(f, input, output, Outcome::Ok)
    }

    fn ints(xs: &[i64]) -> Val {
        Val::Ints(Arc::from(xs.to_vec()))
    }

    fn text(s: &str) -> Val {
        Val::Str(Arc::from(s))
    }

    #[test]
    fn a_write_no_read_shows_is_never_seen() {
        let write = |f, input| op(f, input, Val::Nil, Outcome::Unknown);
        let kv_reads = [ok(Func::Get, Val::Nil, text("v1.a.b")), ok(Func::Get, Val::Nil, Val::Nil)];
        let kv_reads: Vec<&Op> = kv_reads.iter().collect();
        assert!(Kv.never_seen(&write(Func::Put, text("v2")), &kv_reads));
        assert!(!Kv.never_seen(&write(Func::Put, text("v1")), &kv_reads), "a prefix of a read");
        assert!(!Kv.never_seen(&write(Func::Put, text("")), &kv_reads), "empty: shown by anything");
        assert!(Kv.never_seen(&write(Func::Put, text("a.b")), &kv_reads), "in a read, not at its start");
        assert!(!Kv.never_seen(&write(Func::Append, text(".a")), &kv_reads), "inside a read");
        assert!(Kv.never_seen(&write(Func::Append, text(".c")), &kv_reads));
        let register_reads = [ok(Func::Read, Val::Nil, Val::Int(3)), ok(Func::Read, Val::Nil, Val::Nil)];
        let register_reads: Vec<&Op> = register_reads.iter().collect();
        assert!(Register.never_seen(&write(Func::Write, Val::Int(4)), &register_reads));
        assert!(!Register.never_seen(&write(Func::Write, Val::Int(3)), &register_reads));
        assert!(!CasRegister.never_seen(&write(Func::Write, Val::Int(4)), &register_reads), "a cas can see it");
        let list_reads = [ok(Func::Read, Val::Nil, ints(&[1, 2])), ok(Func::Read, Val::Nil, Val::Nil)];
        let list_reads: Vec<&Op> = list_reads.iter().collect();
        assert!(Set.never_seen(&write(Func::Add, Val::Int(3)), &list_reads));
        assert!(!Set.never_seen(&write(Func::Add, Val::Int(2)), &list_reads));
        assert!(ListAppend.never_seen(&write(Func::Append, Val::Int(3)), &list_reads));
        assert!(!ListAppend.never_seen(&write(Func::Append, Val::Int(1)), &list_reads));
        assert!(!ListAppend.never_seen(&write(Func::Read, Val::Int(3)), &list_reads), "not a write");
    }

    #[test]
    fn register_reads_what_was_written() {
        let m = Register;
        let s = m.init();
        assert_eq!(m.step(&s, &ok(Func::Read, Val::Nil, Val::Nil)), Some(None));
        assert_eq!(m.step(&s, &ok(Func::Read, Val::Nil, Val::Int(1))), None);
        let s = m.step(&s, &ok(Func::Write, Val::Int(3), Val::Nil)).unwrap();
        assert_eq!(s, Some(3));
        assert_eq!(m.step(&s, &ok(Func::Read, Val::Nil, Val::Int(3))), Some(Some(3)));
        assert!(m.validate(&ok(Func::Cas, ints(&[1, 2]), Val::Nil)).is_err());
        assert!(m.validate(&ok(Func::Write, text("x"), Val::Nil)).is_err());
    }

    #[test]
    fn cas_register_follows_the_etcd_model() {
        let m = CasRegister;
        let one = Some(1);
        let cas = |outcome| op(Func::Cas, ints(&[1, 2]), Val::Nil, outcome);
        assert_eq!(m.step(&one, &cas(Outcome::Ok)), Some(Some(2)));
        assert_eq!(m.step(&None, &cas(Outcome::Ok)), None);
        // A failed cas is an observation that the register did not hold `from`.
        assert_eq!(m.step(&None, &cas(Outcome::Failed)), Some(None));
        assert_eq!(m.step(&one, &cas(Outcome::Failed)), None);
        // Unknown: takes effect exactly when it can.
        assert_eq!(m.step(&one, &cas(Outcome::Unknown)), Some(Some(2)));
        assert_eq!(m.step(&Some(5), &cas(Outcome::Unknown)), Some(Some(5)));
        assert!(m.validate(&ok(Func::Cas, Val::Int(1), Val::Nil)).is_err());
        assert!(m.is_read_only(&ok(Func::Read, Val::Nil, Val::Nil)));
    }

    #[test]
    fn kv_missing_key_reads_empty_and_append_concatenates() {
        let m = Kv;
        let s = m.init();
        assert!(m.step(&s, &ok(Func::Get, Val::Nil, text(""))).is_some());
        assert!(m.step(&s, &ok(Func::Get, Val::Nil, Val::Nil)).is_some());
        let s = m.step(&s, &ok(Func::Append, text("x 0"), Val::Nil)).unwrap();
        let s = m.step(&s, &ok(Func::Append, text(" y"), Val::Nil)).unwrap();
        assert_eq!(s.text(), "x 0 y");
        assert!(m.step(&s, &ok(Func::Get, Val::Nil, text("x 0"))).is_none());
        let s = m.step(&s, &ok(Func::Put, text("z"), Val::Nil)).unwrap();
        assert!(m.step(&s, &ok(Func::Get, Val::Nil, text("z"))).is_some());
        assert!(m.validate(&ok(Func::Put, Val::Int(1), Val::Nil)).is_err());
    }

    #[test]
    fn set_reads_every_element_in_any_order() {
        let m = Set;
        let s = m.step(&m.init(), &ok(Func::Add, Val::Int(2), Val::Nil)).unwrap();
        let s = m.step(&s, &ok(Func::Add, Val::Int(1), Val::Nil)).unwrap();
        let s = m.step(&s, &ok(Func::Add, Val::Int(1), Val::Nil)).unwrap();
        assert!(m.step(&s, &ok(Func::Read, Val::Nil, ints(&[2, 1]))).is_some());
        assert!(m.step(&s, &ok(Func::Read, Val::Nil, ints(&[1]))).is_none());
        assert!(m.validate(&ok(Func::Read, Val::Nil, text("x"))).is_err());
    }

    #[test]
    fn list_append_reads_in_order() {
        let m = ListAppend;
        let s = m.step(&m.init(), &ok(Func::Append, Val::Int(2), Val::Nil)).unwrap();
        let s = m.step(&s, &ok(Func::Append, Val::Int(1), Val::Nil)).unwrap();
        assert!(m.step(&s, &ok(Func::Read, Val::Nil, ints(&[2, 1]))).is_some());
        assert!(m.step(&s, &ok(Func::Read, Val::Nil, ints(&[1, 2]))).is_none());
    }

    #[test]
    fn heap_bytes_count_fresh_states_only() {
        let m = Kv;
        // A new piece; its text belongs to the history.
        let s = m.step(&m.init(), &ok(Func::Append, text("abcd"), Val::Nil)).unwrap();
        assert_eq!(m.state_heap_bytes(&s), kv_state::PIECE_HEAP_BYTES);
        // A read hands back the same allocation: already counted.
        let read = m.step(&s, &ok(Func::Get, Val::Nil, text("abcd"))).unwrap();
        assert_eq!(m.state_heap_bytes(&read), 0);
        let s = m.step(&s, &ok(Func::Put, text("xy"), Val::Nil)).unwrap();
        assert_eq!(m.state_heap_bytes(&s), kv_state::PIECE_HEAP_BYTES);
        let l = ListAppend;
        let s = l.step(&l.init(), &ok(Func::Append, Val::Int(1), Val::Nil)).unwrap();
        assert_eq!(l.state_heap_bytes(&s), 16 + 8);
        let s = Set.step(&Set.init(), &ok(Func::Add, Val::Int(1), Val::Nil)).unwrap();
        assert_eq!(Set.state_heap_bytes(&s), 16 + 8);
        assert_eq!(Register.state_heap_bytes(&Some(1)), 0);
    }

    #[test]
    fn model_names_parse_and_guess() {
        for kind in ModelKind::ALL {
            assert_eq!(kind.name().parse::<ModelKind>().unwrap(), kind);
        }
        assert!(matches!("queue".parse::<ModelKind>(), Err(CheckError::UnknownModel(_))));
        assert_eq!(ModelKind::guess(&[Func::Read, Func::Cas], false).unwrap(), ModelKind::CasRegister);
        assert_eq!(ModelKind::guess(&[Func::Read, Func::Write], false).unwrap(), ModelKind::Register);
        assert_eq!(ModelKind::guess(&[Func::Get, Func::Append], true).unwrap(), ModelKind::Kv);
        assert_eq!(ModelKind::guess(&[Func::Add, Func::Read], false).unwrap(), ModelKind::Set);
        assert_eq!(ModelKind::guess(&[Func::Append, Func::Read], false).unwrap(), ModelKind::ListAppend);
        assert!(ModelKind::guess(&[], false).is_err());
    }
}
