//! The mapping between workload operations and faultline-node requests.
//!
//! The node stores strings, so: register integers are written as decimal
//! strings; kv values are already strings; set and append-list elements are
//! appended to the key's string as `" <n>"` with the node's `append`, and a
//! read splits the string on whitespace (`crate::systems::text_values`).
//! One key per set keeps an add a single atomic append, so the set checker
//! sees exactly what was applied.
//!
//! A transaction becomes one `txn` request: `["append", k, v]` is
//! `{"f":"append","key":"k","value":" v"}`, `["w", k, v]` is
//! `{"f":"put","key":"k","value":"v"}` and `["r", k, null]` is
//! `{"f":"get","key":"k"}`; the node answers one value per micro-operation,
//! and each get's string is read back as the workload's value (a list, or
//! a register's integer).
use faultline_workloads::{Invocation, WorkloadKind};
use serde_json::{json, Value};

pub use crate::systems::text_values::CodecError;
use crate::systems::text_values;

/// The request body (without `id`, `client`, `seq`) for an invocation.
pub fn request(kind: WorkloadKind, invocation: &Invocation) -> Result<Value, CodecError> {
    if invocation.f == faultline_checkers::TXN_F {
        return txn_request(invocation);
    }
    let key = invocation.key.clone().ok_or_else(|| CodecError::NoKey(invocation.f.clone()))?;
    let bad = || CodecError::BadValue { f: invocation.f.clone(), value: invocation.value.to_string() };
    let scalar = |value: &Value| -> Result<String, CodecError> {
        match value {
            Value::String(text) => Ok(text.clone()),
            Value::Number(number) => Ok(number.to_string()),
            _ => Err(bad()),
        }
    };
    match invocation.f.as_str() {
        "read" | "get" => Ok(json!({"op": "get", "key": key})),
        "write" | "put" => Ok(json!({"op": "put", "key": key, "value": scalar(&invocation.value)?})),
        "cas" => {
            let pair = invocation.value.as_array().filter(|pair| pair.len() == 2).ok_or_else(bad)?;
            Ok(json!({"op": "cas", "key": key, "from": scalar(&pair[0])?, "to": scalar(&pair[1])?}))
        }
        // kv appends are strings, concatenated as they are.
        "append" if kind == WorkloadKind::Kv => {
            let text = invocation.value.as_str().ok_or_else(bad)?;
            Ok(json!({"op": "append", "key": key, "value": text}))
        }
        "add" | "append" => {
            let element = invocation.value.as_u64().ok_or_else(bad)?;
            Ok(json!({"op": "append", "key": key, "value": format!(" {element}")}))
        }
        other => Err(CodecError::UnknownFunction(other.to_string())),
    }
}

/// The history value of a successful completion, from the node's `value`
/// (a string per key, as `text_values` reads it).
pub fn ok_value(kind: WorkloadKind, invocation: &Invocation, node_value: &Value) -> Result<Value, CodecError> {
    if invocation.f == faultline_checkers::TXN_F {
        return txn_ok_value(kind, invocation, node_value);
    }
    text_values::ok_value(kind, invocation, node_value)
}

/// A micro-operation of a list-append transaction: (f, key, value).
fn micro_ops(invocation: &Invocation) -> Result<Vec<(&str, u64, &Value)>, CodecError> {
    let bad = || CodecError::BadValue { f: invocation.f.clone(), value: invocation.value.to_string() };
    let mops = invocation.value.as_array().ok_or_else(bad)?;
    mops.iter()
        .map(|mop| match mop.as_array().map(Vec::as_slice) {
            Some([f, key, value]) => Ok((f.as_str().ok_or_else(bad)?, key.as_u64().ok_or_else(bad)?, value)),
            _ => Err(bad()),
        })
        .collect()
}

fn txn_request(invocation: &Invocation) -> Result<Value, CodecError> {
    let bad = || CodecError::BadValue { f: invocation.f.clone(), value: invocation.value.to_string() };
    let mops: Result<Vec<Value>, CodecError> = micro_ops(invocation)?
        .into_iter()
        .map(|(f, key, value)| match f {
            "r" => Ok(json!({"f": "get", "key": key.to_string()})),
            "append" => {
                let element = value.as_u64().ok_or_else(bad)?;
                Ok(json!({"f": "append", "key": key.to_string(), "value": format!(" {element}")}))
            }
            "w" => {
                let written = value.as_u64().ok_or_else(bad)?;
                Ok(json!({"f": "put", "key": key.to_string(), "value": written.to_string()}))
            }
            _ => Err(bad()),
        })
        .collect();
    Ok(json!({"op": "txn", "txn": mops?}))
}

/// The invocation's micro-operations with each read's list filled in from
/// the node's answer (one value per micro-operation).
fn txn_ok_value(kind: WorkloadKind, invocation: &Invocation, node_value: &Value) -> Result<Value, CodecError> {
    let answers = node_value
        .as_array()
        .ok_or_else(|| CodecError::BadResult(node_value.to_string(), "list of values"))?;
    let mops = micro_ops(invocation)?;
    if answers.len() != mops.len() {
        return Err(CodecError::BadResult(node_value.to_string(), "value per micro-operation"));
    }
    let read = Invocation { f: "read".into(), key: None, value: Value::Null };
    // A list-append read is a list; a rw-register read an integer or null.
    let read_as = if kind == WorkloadKind::RwRegister { WorkloadKind::Register } else { WorkloadKind::Append };
    mops.into_iter()
        .zip(answers)
        .map(|((f, key, value), answer)| match f {
            "r" => Ok(json!(["r", key, text_values::ok_value(read_as, &read, answer)?])),
            _ => Ok(json!([f, key, value])),
        })
        .collect::<Result<Vec<Value>, CodecError>>()
        .map(Value::Array)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: &str, value: Value) -> Invocation {
        Invocation { f: f.to_string(), key: Some("k".to_string()), value }
    }

    #[test]
    fn requests_map_each_function() {
        let kind = WorkloadKind::CasRegister;
        assert_eq!(request(kind, &op("read", json!(null))).unwrap(), json!({"op":"get","key":"k"}));
        assert_eq!(request(kind, &op("write", json!(3))).unwrap(), json!({"op":"put","key":"k","value":"3"}));
        assert_eq!(
            request(kind, &op("cas", json!([1, 2]))).unwrap(),
            json!({"op":"cas","key":"k","from":"1","to":"2"})
        );
        assert_eq!(
            request(WorkloadKind::Set, &op("add", json!(7))).unwrap(),
            json!({"op":"append","key":"k","value":" 7"})
        );
        assert!(request(kind, &op("cas", json!(1))).is_err());
        assert!(request(kind, &op("frob", json!(1))).is_err());
        let keyless = Invocation { f: "read".into(), key: None, value: json!(null) };
        assert_eq!(request(kind, &keyless), Err(CodecError::NoKey("read".into())));
    }

    #[test]
    fn read_results_decode_per_workload() {
        let read = op("read", json!(null));
        assert_eq!(ok_value(WorkloadKind::Register, &read, &json!("4")).unwrap(), json!(4));
        assert_eq!(ok_value(WorkloadKind::Register, &read, &json!(null)).unwrap(), json!(null));
        assert!(ok_value(WorkloadKind::Register, &read, &json!("x")).is_err());
        assert_eq!(ok_value(WorkloadKind::Kv, &op("get", json!(null)), &json!("v9")).unwrap(), json!("v9"));
        assert_eq!(
            request(WorkloadKind::Kv, &op("append", json!(".3"))).unwrap(),
            json!({"op":"append","key":"k","value":".3"})
        );
        assert_eq!(ok_value(WorkloadKind::Append, &read, &json!(" 1 5 3")).unwrap(), json!([1, 5, 3]));
        assert_eq!(ok_value(WorkloadKind::Set, &read, &json!(null)).unwrap(), json!([]));
        assert_eq!(ok_value(WorkloadKind::Set, &op("add", json!(2)), &json!(" 2")).unwrap(), json!(2));
    }

    #[test]
    fn a_transaction_is_one_txn_request_and_its_reads_come_back_as_lists() {
        let kind = WorkloadKind::ListAppend;
        let txn = Invocation { f: "txn".into(), key: None, value: json!([["append", 3, 1], ["r", 3, null], ["r", 4, null]]) };
        assert_eq!(
            request(kind, &txn).unwrap(),
            json!({"op": "txn", "txn": [{"f":"append","key":"3","value":" 1"}, {"f":"get","key":"3"}, {"f":"get","key":"4"}]})
        );
        assert_eq!(
            ok_value(kind, &txn, &json!([null, " 1", null])).unwrap(),
            json!([["append", 3, 1], ["r", 3, [1]], ["r", 4, []]])
        );
        assert!(ok_value(kind, &txn, &json!([null, " 1"])).is_err(), "one value per micro-op");
        assert!(ok_value(kind, &txn, &json!([null, "x", null])).is_err());
        let bad = Invocation { value: json!([["x", 3, 1]]), ..txn };
        assert!(request(kind, &bad).is_err());
        let register = Invocation { f: "txn".into(), key: None, value: json!([["w", 3, 7], ["r", 3, null], ["r", 4, null]]) };
        assert_eq!(
            request(WorkloadKind::RwRegister, &register).unwrap(),
            json!({"op": "txn", "txn": [{"f":"put","key":"3","value":"7"}, {"f":"get","key":"3"}, {"f":"get","key":"4"}]})
        );
        assert_eq!(
            ok_value(WorkloadKind::RwRegister, &register, &json!([null, "7", null])).unwrap(),
            json!([["w", 3, 7], ["r", 3, 7], ["r", 4, null]])
        );
    }
}
