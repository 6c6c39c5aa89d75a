//! Compact operation values: what a model sees once a history is parsed.
//!
//! Readers turn every format's values into [`Val`] right after parsing, so the
//! search compares small integers and shared strings, never JSON trees.
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// One operation argument or result.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Val {
    /// `null` / `nil`: no value, or an empty register.
    Nil,
    Int(i64),
    Str(Arc<str>),
    /// An array of integers: a cas `[from, to]`, a set or list read.
    Ints(Arc<[i64]>),
    /// Anything else (objects, floats, ...): only a model that wants it
    /// accepts it.
    Opaque,
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Nil => write!(f, "nil"),
            Val::Int(i) => write!(f, "{i}"),
            Val::Str(s) => write!(f, "{s:?}"),
            Val::Ints(xs) => {
                write!(f, "[")?;
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        write!(f, " ")?;
                    }
                    write!(f, "{x}")?;
                }
                write!(f, "]")
            }
            Val::Opaque => write!(f, "<opaque>"),
        }
    }
}

/// The operation's function, interned: the models match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Func {
    Read,
    Write,
    Cas,
    Get,
    Put,
    Append,
    Add,
    /// A function no built-in model knows.
    Other,
}

impl Func {
    pub fn parse(name: &str) -> Func {
        match name {
            "read" => Func::Read,
            "write" => Func::Write,
            "cas" => Func::Cas,
            "get" => Func::Get,
            "put" => Func::Put,
            "append" => Func::Append,
            "add" => Func::Add,
            _ => Func::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Func::Read => "read",
            Func::Write => "write",
            Func::Cas => "cas",
            Func::Get => "get",
            Func::Put => "put",
            Func::Append => "append",
            Func::Add => "add",
            Func::Other => "other",
        }
    }
}

/// How an operation ended, as far as the checker may assume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Took effect once, with the result in `output`.
    Ok,
    /// Took effect and reported failure: only a cas whose compare failed
    /// (the register did not hold `from`). Produced by the Jepsen readers.
    Failed,
    /// May or may not have taken effect, at any point after its call.
    Unknown,
}
