//! Every file of the shared Porcupine corpus gets the verdict `expected.tsv`
//! gives. The data is read in place, never copied into the repository.
use std::path::PathBuf;

use faultline_checkers::read::read_path;
use faultline_checkers::{check_op_history, CheckConfig, ModelKind, Verdict};

fn corpus_dir() -> PathBuf {
    let shared = match std::env::var_os("FAULTLINE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    };
    shared.join("data/porcupine")
}

fn expected() -> Vec<(String, ModelKind, Verdict)> {
    let table = std::fs::read_to_string(corpus_dir().join("expected.tsv")).expect("expected.tsv is readable");
    table
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 3, "bad expected.tsv line {line:?}");
            let verdict = if fields[2] == "true" { Verdict::Valid } else { Verdict::Invalid };
            (fields[0].to_string(), fields[1].parse().expect("known model"), verdict)
        })
        .collect()
}

fn check_all(model_given: bool) {
    let table = expected();
    assert_eq!(table.len(), 108, "102 etcd logs + 6 kv files");
    for (file, model, verdict) in table {
        let (_, history) = read_path(&corpus_dir().join(&file), 2).unwrap_or_else(|err| panic!("{file}: {err}"));
        let config = CheckConfig {
            model: model_given.then_some(model),
            ..CheckConfig::default()
        };
        let result = check_op_history(&history, &config).expect("corpus file checks");
        assert_eq!(result.model, model, "{file}: model");
        assert_eq!(result.verdict, verdict, "{file}");
        if verdict == Verdict::Invalid {
            let bad = result.keys.iter().find(|k| k.verdict == Verdict::Invalid).expect("an invalid key");
            let counterexample = bad.counterexample.as_ref().expect("invalid key has a counterexample");
            assert!(!counterexample.concurrent.is_empty(), "{file}: concurrent ops listed");
        }
    }
}

#[test]
fn every_corpus_file_gets_its_expected_verdict() {
    check_all(true);
}

#[test]
fn the_guessed_model_is_the_expected_one() {
    check_all(false);
}
