//! Compact operation values: what a model sees once a history is parsed.
//!
//! Readers turn every format's values into [`Val`] right after parsing, so the
//! search compares small integers and shared strings, never JSON trees.
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use serde::{Serialize, Serializer};

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

/// The operation's function, interned: the models match on it. It stays one
/// `Copy` value of two bytes because every search step compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    Read,
    Write,
    Cas,
    Get,
    Put,
    Append,
    Add,
    /// A function no built-in model knows (a user model's, or a fault's),
    /// by its interned name: [`Func::name`] gives it back.
    Other(FuncName),
}

/// Index of a non-built-in function name in the process-wide name table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FuncName(u8);

impl FuncName {
    /// The name every function past the table's bounds shares.
    pub const UNNAMED: FuncName = FuncName(0);
}

/// Most distinct non-built-in function names a process keeps: ids are a
/// byte, so `Func` stays two bytes and `Op` does not grow. Past it, names
/// all become [`FuncName::UNNAMED`] ("other"), which no model accepts.
pub const FUNC_NAMES_MAX: usize = u8::MAX as usize;
/// Longest function name kept; a longer one becomes "other".
pub const FUNC_NAME_BYTES_MAX: usize = 128;

const UNNAMED_TEXT: &str = "other";

/// Non-built-in names; id `i` is entry `i - 1`. The names are leaked so
/// that [`Func::name`] can return `&'static str`; the bounds above keep the
/// leak under 32 KiB per process.
static FUNC_NAMES: RwLock<Vec<&'static str>> = RwLock::new(Vec::new());

fn intern(name: &str) -> FuncName {
    if name.len() > FUNC_NAME_BYTES_MAX || name == UNNAMED_TEXT {
        return FuncName::UNNAMED;
    }
    let position = |names: &[&str]| names.iter().position(|known| *known == name);
    // A push cannot leave the table half-written, so a poisoned lock still
    // holds a valid table.
    if let Some(at) = position(&FUNC_NAMES.read().unwrap_or_else(PoisonError::into_inner)) {
        return FuncName(at as u8 + 1);
    }
    let mut names = FUNC_NAMES.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(at) = position(&names) {
        return FuncName(at as u8 + 1);
    }
    if names.len() >= FUNC_NAMES_MAX {
        return FuncName::UNNAMED;
    }
    names.push(Box::leak(Box::from(name)));
    FuncName(names.len() as u8)
}

fn interned_name(id: FuncName) -> &'static str {
    match id.0 {
        0 => UNNAMED_TEXT,
        at => FUNC_NAMES.read().unwrap_or_else(PoisonError::into_inner)[at as usize - 1],
    }
}

impl Func {
    /// The function called `name`. A name that is not built in is interned
    /// (see [`FUNC_NAMES_MAX`]), so a user model can build its functions
    /// once, e.g. `Func::parse("inc")`, and compare them as cheaply as
    /// built-ins.
    pub fn parse(name: &str) -> Func {
        match name {
            "read" => Func::Read,
            "write" => Func::Write,
            "cas" => Func::Cas,
            "get" => Func::Get,
            "put" => Func::Put,
            "append" => Func::Append,
            "add" => Func::Add,
            _ => Func::Other(intern(name)),
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
            Func::Other(id) => interned_name(id),
        }
    }
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Func {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_functions_keep_their_names() {
        let inc = Func::parse("inc");
        assert_eq!(inc, Func::parse("inc"));
        assert_ne!(inc, Func::parse("dec"));
        assert_eq!(inc.name(), "inc");
        assert_eq!(Func::parse("dec").name(), "dec");
        assert_eq!(Func::parse("read"), Func::Read);
        assert_eq!(Func::parse("other"), Func::Other(FuncName::UNNAMED));
        let long = "x".repeat(FUNC_NAME_BYTES_MAX + 1);
        assert_eq!(Func::parse(&long), Func::Other(FuncName::UNNAMED));
        assert_eq!(serde_json::to_string(&inc).unwrap(), "\"inc\"");
        assert_eq!(std::mem::size_of::<Func>(), 2);
    }
}
