//! EDN histories as Jepsen and Knossos write them: one vector or list of
//! operation maps spread over lines, with comments, discards, tags, sets
//! and floats, read into the same operations as one map per line.
use std::path::PathBuf;

use faultline_checkers::read::{detect, read_bytes, read_path, Format};
use faultline_checkers::{check_op_history, CheckConfig, ModelKind, Op, OpHistory, ReadError, Verdict};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn read_text(text: &str) -> Result<OpHistory, ReadError> {
    let (format, history) = read_bytes(text.as_bytes(), 1)?;
    assert_eq!(format, Format::Edn);
    Ok(history)
}

/// Everything but the lines, which differ between the shapes.
fn without_lines(history: &OpHistory) -> (Vec<String>, Vec<Vec<Op>>, u64, u64) {
    let ops = history.ops_by_key.iter().map(|ops| ops.iter().map(|op| Op { line: 0, ..op.clone() }).collect()).collect();
    (history.keys.clone(), ops, history.event_count, history.nemesis_event_count)
}

fn lines(history: &OpHistory) -> Vec<u32> {
    history.ops_by_key.iter().flatten().map(|op| op.line).collect()
}

fn verdict(history: &OpHistory, model: ModelKind) -> Verdict {
    let config = CheckConfig { model: Some(model), ..CheckConfig::default() };
    check_op_history(history, &config).expect("checkable").verdict
}

#[test]
fn a_multi_line_vector_reads_as_the_same_ops_one_per_line() {
    let vector = std::fs::read_to_string(data("cas-register-vector.edn")).unwrap();
    let one_per_line = std::fs::read_to_string(data("cas-register-lines.edn")).unwrap();
    let from_vector = read_text(&vector).unwrap();
    let from_lines = read_text(&one_per_line).unwrap();
    assert_eq!(without_lines(&from_vector), without_lines(&from_lines));
    // Jepsen's failed read is unknown: kept, as an operation that may not have happened.
    assert_eq!(from_lines.op_count(), 4);
    // Each operation is named by the line its invocation's map opens on.
    assert_eq!(lines(&from_vector), [3, 5, 10, 13]);
    assert_eq!(lines(&from_lines), [1, 3, 5, 8]);
    assert_eq!(verdict(&from_vector, ModelKind::CasRegister), Verdict::Valid);
    // From a file too, and as a list instead of a vector.
    let (format, from_path) = read_path(&data("cas-register-vector.edn"), 1).unwrap();
    assert_eq!((format, without_lines(&from_path)), (Format::Edn, without_lines(&from_lines)));
    let list = vector.replacen('[', "(", 1).replace("timeout}]", "timeout})");
    assert_eq!(without_lines(&read_text(&list).unwrap()), without_lines(&from_lines));
}

#[test]
fn maps_spread_over_lines_without_a_vector_are_read_too() {
    // Starts like one map per line, so the fast path reads it first.
    let text = "{:process 0, :type :invoke, :f :write, :value 1}\n\
                {:process 0, :type :ok,\n :f :write, :value 1}\n\
                ; a comment line\n\
                {:process 1, :type :invoke, :f :read, :value nil} {:process 1, :type :ok, :f :read, :value 1}\n";
    let history = read_text(text).unwrap();
    assert_eq!(lines(&history), [1, 5]);
    assert_eq!(verdict(&history, ModelKind::Register), Verdict::Valid);
    // Comments before one map per line keep the fast path and its lines.
    let history = read_text("; header\n{:process 0, :type :invoke, :f :read, :value nil} ; trailing\n").unwrap();
    assert_eq!(lines(&history), [2]);
}

#[test]
fn a_set_reaches_the_set_model_as_a_vector_does() {
    let history = |read: &str| {
        format!(
            "[{{:process 0, :type :invoke, :f :add, :value 1}} {{:process 0, :type :ok, :f :add, :value 1}}\n \
             {{:process 0, :type :invoke, :f :add, :value 2}} {{:process 0, :type :ok, :f :add, :value 2}}\n \
             {{:process 1, :type :invoke, :f :read, :value nil}}\n \
             {{:process 1, :type :ok, :f :read, :value {read}}}]"
        )
    };
    let as_set = read_text(&history("#{2 1}")).unwrap();
    let as_vector = read_text(&history("[2 1]")).unwrap();
    assert_eq!(without_lines(&as_set), without_lines(&as_vector));
    assert_eq!(verdict(&as_set, ModelKind::Set), Verdict::Valid);
    assert_eq!(verdict(&read_text(&history("#{1}")).unwrap(), ModelKind::Set), Verdict::Invalid);
}

#[test]
fn detects_every_edn_shape() {
    let edn = [
        "[{:process 0}]",
        "  (\n ; comment\n {:process 0})",
        "[#jepsen.history.Op{:process 0}]",
        "; comment\n{:process 0}",
        "{\n :process 0}",
        "#jepsen.history.Op{:process 0}",
        "[#_ 1 {:process 0}]",
    ];
    for text in edn {
        assert_eq!(detect(text.as_bytes()).unwrap(), Format::Edn, "{text}");
    }
    for text in ["[1 2]", "# not a tag", "[]", "(defn f [])", "; only a comment\n"] {
        assert!(matches!(detect(text.as_bytes()), Err(ReadError::UnknownFormat)), "{text}");
    }
}

#[test]
fn malformed_vectors_are_one_line_errors_naming_the_line() {
    let read = "{:process 0, :type :invoke, :f :read, :value nil}";
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let cases = [
        (format!("[{read}\n {}\n", read.replace(":process 0", ":process 1")), 1, "never closed"),
        (format!("[{read}\n {{:process 0, :type :ok, :f :read, :value {deep}}}]"), 2, "levels deep"),
        (format!("[{read}\n\n [1 2]]"), 3, "expected an operation map"),
        (format!("[{read}\n {{:process 0,\n  :type :what}}]"), 2, "unknown :type"),
        (format!("[{read}\n {{:process 1 :value \"abc}}]\n"), 2, "string is never closed"),
        (format!("[{read}]\n{read}"), 2, "after the end"),
        (format!("[{read}\n }}]"), 2, "unexpected '}'"),
        (format!("[{read}\n {{:process 1 :type}}]"), 2, "odd number"),
        (format!("[{read}\n {{:process 1, :value 1/2}}]"), 2, "unsupported number"),
    ];
    for (text, want_line, needle) in cases {
        match read_text(&text) {
            Err(ReadError::BadLine { line, message }) => {
                assert_eq!(line, want_line, "{text}: {message}");
                assert!(message.contains(needle) && !message.contains('\n') && message.len() < 200, "{text}: {message}");
            }
            other => panic!("{text}: expected a bad line, got {other:?}"),
        }
    }
    // Pairing errors name the opening line of the map too.
    let text = format!("[{read}\n {read}]");
    assert!(matches!(read_text(&text), Err(ReadError::Pairing { line: 2, .. })));
}
