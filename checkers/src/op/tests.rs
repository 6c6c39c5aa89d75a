//! Pairing invocations with completions, whole and in pieces.
use super::*;

/// Deterministic event streams over 3 processes and 3 keys: mostly
/// well paired, with every kind of pairing mistake now and then.
fn records(seed: u64, count: usize) -> Vec<Record<'static>> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    let completions = [EventType::Ok, EventType::Fail, EventType::Info];
    let keys = ["a", "b", "c"];
    let mut pending = [false; 3];
    (0..count)
        .map(|i| {
            let process = next(3);
            let mistake = next(40) == 0;
            let invoke = pending[process as usize] == mistake;
            pending[process as usize] = invoke;
            Record {
                process: if next(10) == 0 { None } else { Some(process) },
                kind: if invoke { EventType::Invoke } else { completions[next(3) as usize] },
                f: if next(40) == 0 { Func::Write } else { Func::Read },
                key: Some(Cow::Borrowed(keys[next(3) as usize])),
                value: Val::Int(next(5) as i64),
                // Increasing, but for a rare step back.
                time_ns: i as u64 * 10 + if next(40) == 0 { 0 } else { 20 },
                line: i as u32 + 1,
                fail_means: FailMeaning::DidNotHappen,
            }
        })
        .collect()
}

/// Keys, ops, event count and nemesis event count, or the error's text.
type Built = Result<(Vec<String>, Vec<Vec<Op>>, u64, u64), String>;

fn outcome(result: Result<OpHistory, ReadError>) -> Built {
    result
        .map(|h| (h.keys, h.ops_by_key, h.event_count, h.nemesis_event_count))
        .map_err(|err| err.to_string())
}

fn pushed(records: &[Record<'static>]) -> Result<OpHistory, ReadError> {
    let mut builder = HistoryBuilder::new();
    for record in records {
        builder.push(record.clone())?;
    }
    Ok(builder.finish_history())
}

fn merged(records: &[Record<'static>], cuts: &[usize]) -> Result<OpHistory, ReadError> {
    let mut builder = HistoryBuilder::new();
    let mut start = 0;
    for end in cuts.iter().copied().chain([records.len()]) {
        let mut piece = PiecePairing::new();
        for record in &records[start..end] {
            piece.push(record.clone());
        }
        builder.merge_piece(piece)?;
        start = end;
    }
    Ok(builder.finish_history())
}

#[test]
fn pieces_merged_in_order_equal_events_pushed_one_by_one() {
    let mut errors = 0;
    for seed in 1..300 {
        let records = records(seed, 12);
        let want = outcome(pushed(&records));
        errors += usize::from(want.is_err());
        for a in 0..=records.len() {
            assert_eq!(outcome(merged(&records, &[a])), want, "seed {seed} cut {a}");
            for b in a..=records.len() {
                assert_eq!(outcome(merged(&records, &[a, b])), want, "seed {seed} cuts {a} {b}");
            }
        }
    }
    // Both kinds of outcome were compared.
    assert!(errors > 10 && errors < 290, "{errors}");
}
