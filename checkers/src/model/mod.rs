//! Sequential specifications ("models") the linearizability search checks
//! against. A model is a small trait implementation: an initial state, a pure
//! `step`, and a state type with equality and hash (the search caches
//! `(linearized set, state)` pairs). To add one, implement [`Model`] and call
//! [`crate::linear::check_ops`] with it.
use std::fmt::Debug;
use std::hash::Hash;
use std::str::FromStr;

use serde::Serialize;

use crate::error::CheckError;
use crate::op::Op;
use crate::value::{Func, Outcome};

mod cas_register;
mod kv;
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
    type State: Clone + Eq + Hash + Debug + Send;

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
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
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
pub(crate) fn is_ok(op: &Op) -> bool {
    op.outcome == Outcome::Ok
}

pub(crate) fn unsupported(model: &str, op: &Op) -> String {
    format!("function {} is not part of the {model} model", op.f.name())
}
