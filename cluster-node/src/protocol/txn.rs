//! The `txn` request's micro-ops. Parsed as strictly as the rest of the
//! protocol; each rejection names the micro-op by its position, so a client
//! with 64 of them can tell which one is wrong.
use serde::Deserialize;

use super::{present_or_null, KEY_BYTES_MAX, VALUE_BYTES_MAX};
use crate::kv::TxnOp;

/// Micro-ops in one `txn`. The whole transaction is one log entry and one
/// answer line, so the count bounds the work of one apply.
pub const TXN_MOPS_MAX: usize = 64;

/// One micro-op as it arrives; a known field that its `f` does not use
/// (`value` on a `get`, `to` on a `put`) is ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMop {
    f: Option<String>,
    key: Option<String>,
    value: Option<String>,
    /// `cas`: `Some(None)` is `"from": null` (key absent), `None` missing.
    #[serde(default, deserialize_with = "present_or_null")]
    from: Option<Option<String>>,
    to: Option<String>,
}

/// The micro-ops of a `txn` request, or the `bad_request` message.
pub(super) fn txn_ops(raw: Option<&[RawMop]>) -> Result<Vec<TxnOp>, String> {
    let mops = raw.ok_or("missing field `txn`")?;
    if mops.is_empty() {
        return Err("`txn` has no micro-ops".into());
    }
    if mops.len() > TXN_MOPS_MAX {
        return Err(format!(
            "`txn` has {} micro-ops; at most {TXN_MOPS_MAX}",
            mops.len()
        ));
    }
    let ops = mops.iter().enumerate().map(|(position, mop)| {
        txn_op(mop).map_err(|message| format!("txn[{position}]: {message}"))
    });
    ops.collect()
}

fn txn_op(mop: &RawMop) -> Result<TxnOp, String> {
    let f = mop.f.as_deref().ok_or("missing field `f`")?;
    let key = || mop.key.clone().ok_or("missing field `key`");
    let value = || mop.value.clone().ok_or("missing field `value`");
    match f {
        "get" => Ok(TxnOp::Get { key: key()? }),
        "put" => Ok(TxnOp::Put {
            key: key()?,
            value: value()?,
        }),
        "append" => Ok(TxnOp::Append {
            key: key()?,
            value: value()?,
        }),
        "cas" => Ok(TxnOp::Cas {
            key: key()?,
            from: mop
                .from
                .clone()
                .ok_or("missing field `from` (use null for an absent key)")?,
            to: mop.to.clone().ok_or("missing field `to`")?,
        }),
        other => Err(format!(
            "unknown f `{other}` (known: get, put, append, cas)"
        )),
    }
}

/// The `too_large` check: the same key and value limits as single ops.
pub(super) fn check_sizes(raw: Option<&[RawMop]>) -> Result<(), String> {
    for (position, mop) in raw.unwrap_or_default().iter().enumerate() {
        if mop.key.as_ref().is_some_and(|k| k.len() > KEY_BYTES_MAX) {
            return Err(format!(
                "txn[{position}]: key longer than {KEY_BYTES_MAX} bytes"
            ));
        }
        let values = [
            mop.value.as_ref(),
            mop.to.as_ref(),
            mop.from.as_ref().and_then(|from| from.as_ref()),
        ];
        if values.iter().flatten().any(|v| v.len() > VALUE_BYTES_MAX) {
            return Err(format!(
                "txn[{position}]: value longer than {VALUE_BYTES_MAX} bytes"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{parse_request, ErrorCode, Operation};
    use super::*;

    #[test]
    fn parses_a_txn_with_every_micro_op() {
        let line = br#"{"id":7,"op":"txn","txn":[{"f":"get","key":"a"},{"f":"append","key":"a","value":" 3"},{"f":"put","key":"b","value":"x"},{"f":"get","key":"b","value":null}],"client":"c1","seq":4}"#;
        let request = parse_request(line).unwrap();
        let expected = vec![
            TxnOp::Get { key: "a".into() },
            TxnOp::Append {
                key: "a".into(),
                value: " 3".into(),
            },
            TxnOp::Put {
                key: "b".into(),
                value: "x".into(),
            },
            TxnOp::Get { key: "b".into() },
        ];
        assert_eq!(request.operation, Operation::Txn(expected));
        assert_eq!(
            (request.id, request.client.as_deref(), request.seq),
            (7, Some("c1"), Some(4))
        );
        let gets = vec![r#"{"f":"get","key":"k"}"#; TXN_MOPS_MAX].join(",");
        let at_limit = format!(r#"{{"id":1,"op":"txn","txn":[{gets}]}}"#);
        assert!(parse_request(at_limit.as_bytes()).is_ok());
    }

    #[test]
    fn parses_cas_micro_ops_with_a_value_or_null_from() {
        let line = br#"{"id":8,"op":"txn","txn":[{"f":"cas","key":"0","from":"10","to":"7"},{"f":"cas","key":"3","from":null,"to":"8"}]}"#;
        let expected = vec![
            TxnOp::Cas {
                key: "0".into(),
                from: Some("10".into()),
                to: "7".into(),
            },
            TxnOp::Cas {
                key: "3".into(),
                from: None,
                to: "8".into(),
            },
        ];
        let request = parse_request(line).unwrap();
        assert_eq!(request.operation, Operation::Txn(expected));
        let ignored =
            br#"{"id":8,"op":"txn","txn":[{"f":"put","key":"a","value":"v","from":"x","to":"y"}]}"#;
        let put = TxnOp::Put {
            key: "a".into(),
            value: "v".into(),
        };
        let request = parse_request(ignored).unwrap();
        assert_eq!(request.operation, Operation::Txn(vec![put]));
    }

    #[test]
    fn every_malformed_txn_is_a_bad_request_with_a_reason() {
        let gets = vec![r#"{"f":"get","key":"k"}"#; TXN_MOPS_MAX + 1].join(",");
        let over_limit = format!(r#"{{"id":9,"op":"txn","txn":[{gets}]}}"#);
        let cases: [(&[u8], &str); 13] = [
            (br#"{"id":9,"op":"txn"}"#, "missing field `txn`"),
            (br#"{"id":9,"op":"txn","txn":[]}"#, "`txn` has no micro-ops"),
            (over_limit.as_bytes(), "`txn` has 65 micro-ops; at most 64"),
            (
                br#"{"id":9,"op":"txn","txn":[{"key":"a"}]}"#,
                "txn[0]: missing field `f`",
            ),
            (
                br#"{"id":9,"op":"txn","txn":[{"f":"get","key":"a"},{"f":"delete","key":"a"}]}"#,
                "txn[1]: unknown f `delete` (known: get, put, append, cas)",
            ),
            (
                br#"{"id":9,"op":"txn","txn":[{"f":"get","key":"a"},{"f":"cas","key":"a","to":"b"}]}"#,
                "txn[1]: missing field `from` (use null for an absent key)",
            ),
            (
                br#"{"id":9,"op":"txn","txn":[{"f":"cas","key":"a","from":null}]}"#,
                "txn[0]: missing field `to`",
            ),
            (
                br#"{"id":9,"op":"txn","txn":[{"f":"cas","from":"a","to":"b"}]}"#,
                "txn[0]: missing field `key`",
            ),
            (
                br#"{"id":9,"op":"txn","txn":[{"f":"cas","key":"a","from":5,"to":"b"}]}"#,
                "malformed request",
            ),
            (
                br#"{"id":9,"op":"txn","txn":[{"f":"get"}]}"#,
                "txn[0]: missing field `key`",
            ),
            (
                br#"{"id":9,"op":"txn","txn":[{"f":"put","key":"a"}]}"#,
                "txn[0]: missing field `value`",
            ),
            (
                br#"{"id":9,"op":"txn","txn":[{"f":"append","key":"a","value":1}]}"#,
                "malformed request",
            ),
            (
                br#"{"id":9,"op":"txn","txn":[{"f":"get","key":"a","bogus":"b"}]}"#,
                "unknown field `bogus`",
            ),
        ];
        for (line, needle) in cases {
            let rejection = parse_request(line).unwrap_err();
            let text = String::from_utf8_lossy(line);
            assert_eq!(
                (rejection.id, rejection.error),
                (Some(9), ErrorCode::BadRequest),
                "{text}"
            );
            assert!(
                rejection.message.contains(needle),
                "{needle} -> {}",
                rejection.message
            );
            assert!(
                !rejection.message.contains('\n'),
                "one line: {}",
                rejection.message
            );
        }
    }

    #[test]
    fn oversized_micro_op_keys_and_values_are_too_large() {
        let key = "k".repeat(KEY_BYTES_MAX + 1);
        let value = "v".repeat(VALUE_BYTES_MAX + 1);
        let long_key = format!(r#"{{"id":1,"op":"txn","txn":[{{"f":"get","key":"{key}"}}]}}"#);
        let long_value = format!(
            r#"{{"id":1,"op":"txn","txn":[{{"f":"get","key":"a"}},{{"f":"put","key":"b","value":"{value}"}}]}}"#
        );
        let rejection = parse_request(long_key.as_bytes()).unwrap_err();
        assert_eq!(
            (rejection.error, rejection.message.as_str()),
            (ErrorCode::TooLarge, "txn[0]: key longer than 1024 bytes")
        );
        let rejection = parse_request(long_value.as_bytes()).unwrap_err();
        assert_eq!(rejection.error, ErrorCode::TooLarge);
        assert!(
            rejection.message.starts_with("txn[1]: value longer than"),
            "{}",
            rejection.message
        );
        let long_from = format!(
            r#"{{"id":1,"op":"txn","txn":[{{"f":"cas","key":"a","from":"{value}","to":"b"}}]}}"#
        );
        let long_to = format!(
            r#"{{"id":1,"op":"txn","txn":[{{"f":"get","key":"a"}},{{"f":"cas","key":"a","from":null,"to":"{value}"}}]}}"#
        );
        for (line, position) in [(long_from, 0), (long_to, 1)] {
            let rejection = parse_request(line.as_bytes()).unwrap_err();
            assert_eq!(rejection.error, ErrorCode::TooLarge);
            let prefix = format!("txn[{position}]: value longer than");
            assert!(
                rejection.message.starts_with(&prefix),
                "{}",
                rejection.message
            );
        }
    }
}
