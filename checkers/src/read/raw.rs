//! Zero-copy serde types for parsing JSONL events fast: strings are borrowed
//! from the input when they have no escapes, values go straight to [`Val`].
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::value::Val;

/// A string borrowed from the input unless it had to be unescaped.
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// `process`: a client number or `"nemesis"`; `None` = nemesis.
pub struct RawProcess(pub Option<u64>);

impl<'de> Deserialize<'de> for RawProcess {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ProcessVisitor;
        impl Visitor<'_> for ProcessVisitor {
            type Value = RawProcess;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a process number or \"nemesis\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawProcess(Some(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v == "nemesis" {
                    Ok(RawProcess(None))
                } else {
                    Err(E::custom(format!("process must be a number or \"nemesis\", got {v:?}")))
                }
            }
        }
        deserializer.deserialize_any(ProcessVisitor)
    }
}

/// An element of an array value: an integer, or anything else (`None`).
struct MaybeInt(Option<i64>);

impl<'de> Deserialize<'de> for MaybeInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OtherVisitor).map(|val| match val {
            Val::Int(i) => MaybeInt(Some(i)),
            _ => MaybeInt(None),
        })
    }
}

/// Parses any JSON value into a [`Val`].
struct OtherVisitor;

impl<'de> Visitor<'de> for OtherVisitor {
    type Value = Val;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Val, E> {
        Ok(Val::Nil)
    }
    fn visit_none<E: de::Error>(self) -> Result<Val, E> {
        Ok(Val::Nil)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val, E> {
        Ok(Val::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val, E> {
        Ok(i64::try_from(v).map_or(Val::Opaque, Val::Int))
    }
    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<Val, E> {
        Ok(Val::Opaque)
    }
    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<Val, E> {
        Ok(Val::Opaque)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Val, E> {
        Ok(Val::Str(Arc::from(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        let mut ints = Vec::new();
        let mut all_ints = true;
        while let Some(MaybeInt(item)) = seq.next_element()? {
            match item {
                Some(i) => ints.push(i),
                None => all_ints = false,
            }
        }
        Ok(if all_ints { Val::Ints(Arc::from(ints)) } else { Val::Opaque })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Opaque)
    }
}

/// `value`, parsed directly into a [`Val`].
pub struct RawVal(pub Val);

impl Default for RawVal {
    fn default() -> Self {
        RawVal(Val::Nil)
    }
}

impl<'de> Deserialize<'de> for RawVal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OtherVisitor).map(RawVal)
    }
}

/// Converts a `serde_json::Value` (from an in-memory [`crate::Event`]).
pub fn json_to_val(value: &serde_json::Value) -> Val {
    match value {
        serde_json::Value::Null => Val::Nil,
        serde_json::Value::Number(n) => n.as_i64().map_or(Val::Opaque, Val::Int),
        serde_json::Value::String(s) => Val::Str(Arc::from(s.as_str())),
        serde_json::Value::Array(items) => {
            let ints: Option<Vec<i64>> = items.iter().map(|item| item.as_i64()).collect();
            ints.map_or(Val::Opaque, |ints| Val::Ints(Arc::from(ints)))
        }
        _ => Val::Opaque,
    }
}
