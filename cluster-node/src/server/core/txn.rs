//! The `txn` request on the server. The correct node proposes the whole
//! transaction as one entry through the write path, so its reads happen at
//! the entry's apply point, after every entry before it and before every
//! entry after it: strict serializable, and all or nothing when a `cas`
//! fails. Two planted bugs change that path: `txn-read-uncommitted` reads
//! at arrival, `txn-non-atomic` proposes one micro-op at a time (see
//! `bugs.rs`).
use std::collections::{BTreeMap, VecDeque};

use tokio::time::Instant;

use super::{outcome_response, Core, Waiter};
use crate::kv::{Command, KvOp, KvState, Outcome, TxnOp};
use crate::raft::Role;
use crate::server::client::Responder;

/// What a waiting request answers once its entry applied.
pub(super) enum Reply {
    /// The entry's own outcome: every request of the correct node.
    Outcome,
    /// `txn-read-uncommitted`: the values read when the request arrived;
    /// the entry holds only the writes.
    Reads(Reads),
    /// `txn-non-atomic`: the entry is one part of a txn, more may follow.
    Parts(Parts),
}

/// `txn-read-uncommitted`: a txn's answer taken at arrival.
pub(super) struct Reads {
    /// One value per micro-op: a `get`'s read, `None` for a write.
    values: Vec<Option<String>>,
    /// The txn position of each micro-op in the writes entry, in order, so
    /// a failing `cas` is reported at its position in the request.
    write_positions: Vec<u64>,
}

/// A txn proposed one micro-op at a time (`txn-non-atomic`). It lives in
/// its waiter, so it goes when the waiter goes (answered or expired), and
/// it holds at most `TXN_MOPS_MAX` micro-ops and values.
pub(super) struct Parts {
    /// Micro-ops not proposed yet, in order.
    rest: VecDeque<TxnOp>,
    /// One value per part applied so far, in order.
    values: Vec<Option<String>>,
}

/// What an applied or lost entry means for the request waiting on it.
pub(super) enum Settled {
    /// Applied; answer with this outcome.
    Applied(Outcome),
    /// Another leader's entry took its index: nothing of it took effect.
    Lost,
    /// Part of it took effect and the rest never will: outcome unknown.
    Unknown,
}

impl Core {
    /// The txn path: one entry through the write path, unless a planted
    /// bug is on. With both on, `txn-read-uncommitted` decides (its writes
    /// go as one entry).
    pub(super) fn start_txn(
        &mut self,
        ops: Vec<TxnOp>,
        client: Option<String>,
        seq: Option<u64>,
        id: u64,
        deadline: Instant,
        responder: Responder,
    ) {
        // A non-leader refuses through the write path (`not_leader`).
        let leads = self.raft.status().role == Role::Leader;
        let (command, reply) = if self.bugs.txn_read_uncommitted && leads {
            let (reads, writes) = split_reads_uncommitted(&self.kv, ops);
            if writes.is_empty() {
                return responder.answer(outcome_response(id, Outcome::Values(reads.values)));
            }
            let op = KvOp::Txn { ops: writes };
            (Command { client, seq, op }, Reply::Reads(reads))
        } else if self.bugs.txn_non_atomic && ops.len() > 1 {
            first_part(ops)
        } else {
            let op = KvOp::Txn { ops };
            (Command { client, seq, op }, Reply::Outcome)
        };
        self.start_write(command, reply, id, deadline, responder);
    }

    /// What an applied entry means for the request waiting on it; `outcome`
    /// is `None` when the entry was not the request's own. Returns `None`
    /// while a txn in parts goes on: its waiter then waits at the next
    /// part's index.
    pub(super) fn settle(
        &mut self,
        mut waiter: Waiter,
        outcome: Option<Outcome>,
    ) -> Option<(Waiter, Settled)> {
        let settled = match std::mem::replace(&mut waiter.reply, Reply::Outcome) {
            Reply::Outcome => outcome.map_or(Settled::Lost, Settled::Applied),
            Reply::Reads(reads) => reads_settled(reads, outcome),
            Reply::Parts(parts) => return self.next_part(waiter, parts, outcome),
        };
        Some((waiter, settled))
    }

    /// `txn-non-atomic`: a part applied; propose the next one now, so
    /// entries of other requests land between the parts (proposed together,
    /// the parts would sit next to each other in the log and apply as one).
    /// A part that failed ends the txn; parts applied before it stay applied.
    fn next_part(
        &mut self,
        mut waiter: Waiter,
        mut parts: Parts,
        outcome: Option<Outcome>,
    ) -> Option<(Waiter, Settled)> {
        let Some(Outcome::Values(values)) = outcome else {
            return Some((waiter, part_failed(&parts, outcome)));
        };
        assert_eq!(values.len(), 1, "a part is one micro-op");
        parts.values.extend(values);
        let Some(op) = parts.rest.pop_front() else {
            return Some((waiter, Settled::Applied(Outcome::Values(parts.values))));
        };
        let data = serde_json::to_vec(&part_command(op)).expect("commands always serialize");
        match self.raft.propose(data) {
            Ok((index, term)) => {
                waiter.term = term;
                waiter.reply = Reply::Parts(parts);
                self.writes.insert(index, waiter);
                None
            }
            Err(_) => Some((waiter, Settled::Unknown)),
        }
    }
}

/// `txn-non-atomic`: what a part that did not apply (`outcome` `None`:
/// lost; a `cas` mismatch) means for the whole txn. Only a first part
/// leaves nothing applied, so only then is the answer definite; after
/// that, the honest answer for half a txn is "unknown".
fn part_failed(parts: &Parts, outcome: Option<Outcome>) -> Settled {
    if !parts.values.is_empty() {
        return Settled::Unknown;
    }
    match outcome {
        None => Settled::Lost,
        Some(Outcome::TxnCasMismatch { position, current }) => {
            assert_eq!(position, 0, "a part is one micro-op");
            Settled::Applied(Outcome::TxnCasMismatch { position, current })
        }
        Some(other) => panic!("a part has no session and one micro-op: {other:?}"),
    }
}

/// `txn-non-atomic`: the first part, carrying the rest to propose later.
fn first_part(ops: Vec<TxnOp>) -> (Command, Reply) {
    let mut rest = VecDeque::from(ops);
    let first = rest.pop_front().expect("a txn has a micro-op");
    let parts = Parts {
        rest,
        values: Vec::new(),
    };
    (part_command(first), Reply::Parts(parts))
}

/// One part of a txn in parts. Without a session: the table would take
/// each part for a retry of the first one (same client and seq).
fn part_command(op: TxnOp) -> Command {
    Command {
        client: None,
        seq: None,
        op: KvOp::Txn { ops: vec![op] },
    }
}

/// `txn-read-uncommitted`: every `get` answered from `kv` as it is now,
/// overlaid with the txn's own earlier writes (so a txn stays consistent
/// with itself and only isolation breaks); returns one value per micro-op
/// and the writes left to propose. A `cas` is a write: its check happens
/// when the writes entry applies, and the overlay takes its `to`, which
/// is what a later `get` sees if the entry applies at all.
fn split_reads_uncommitted(kv: &KvState, ops: Vec<TxnOp>) -> (Reads, Vec<TxnOp>) {
    let mut written: BTreeMap<&str, String> = BTreeMap::new();
    let mut reads = Vec::with_capacity(ops.len());
    let current = |key: &str, written: &BTreeMap<&str, String>| {
        written.get(key).or_else(|| kv.get(key)).cloned()
    };
    for op in &ops {
        reads.push(match op {
            TxnOp::Get { key } => current(key, &written),
            TxnOp::Put { key, value } => {
                written.insert(key, value.clone());
                None
            }
            TxnOp::Append { key, value } => {
                let mut new_value = current(key, &written).unwrap_or_default();
                new_value.push_str(value);
                written.insert(key, new_value);
                None
            }
            TxnOp::Cas { key, to, .. } => {
                written.insert(key, to.clone());
                None
            }
        });
    }
    let (write_positions, writes): (Vec<u64>, Vec<TxnOp>) = (0u64..)
        .zip(ops)
        .filter(|(_, op)| !matches!(op, TxnOp::Get { .. }))
        .unzip();
    let reads = Reads {
        values: reads,
        write_positions,
    };
    (reads, writes)
}

/// `txn-read-uncommitted`: the writes applied; answer with the reads taken
/// at arrival. If a `cas` failed nothing applied: answer its mismatch at
/// its position in the request.
fn reads_settled(reads: Reads, outcome: Option<Outcome>) -> Settled {
    match outcome {
        Some(Outcome::Values(_)) => Settled::Applied(Outcome::Values(reads.values)),
        Some(Outcome::TxnCasMismatch { position, current }) => {
            let index = usize::try_from(position).expect("a position fits in usize");
            let position = reads.write_positions[index];
            Settled::Applied(Outcome::TxnCasMismatch { position, current })
        }
        // `stale`: a retry of an older seq; its reads mean nothing either.
        Some(other) => Settled::Applied(other),
        None => Settled::Lost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(key: &str) -> TxnOp {
        TxnOp::Get { key: key.into() }
    }

    fn append(key: &str, value: &str) -> TxnOp {
        TxnOp::Append {
            key: key.into(),
            value: value.into(),
        }
    }

    fn cas(key: &str, from: Option<&str>, to: &str) -> TxnOp {
        TxnOp::Cas {
            key: key.into(),
            from: from.map(str::to_string),
            to: to.into(),
        }
    }

    fn mismatch(position: u64, current: &str) -> Outcome {
        let current = Some(current.to_string());
        Outcome::TxnCasMismatch { position, current }
    }

    #[test]
    fn reads_at_arrival_see_local_state_and_the_txns_own_writes() {
        let mut kv = KvState::new(1);
        let seed = Command {
            client: None,
            seq: None,
            op: KvOp::Txn {
                ops: vec![append("a", "1")],
            },
        };
        kv.apply(1, &seed);
        let put = TxnOp::Put {
            key: "b".into(),
            value: "x".into(),
        };
        let ops = vec![
            get("a"),
            append("a", "2"),
            get("a"),
            put.clone(),
            get("b"),
            get("c"),
            cas("c", Some("unchecked"), "y"),
            get("c"),
        ];
        let (reads, writes) = split_reads_uncommitted(&kv, ops);
        let expected = vec![
            Some("1".into()),
            None,
            Some("12".into()),
            None,
            Some("x".into()),
            None,
            None,
            Some("y".into()),
        ];
        assert_eq!(reads.values, expected);
        assert_eq!(reads.write_positions, [1, 3, 6]);
        let cas = cas("c", Some("unchecked"), "y");
        assert_eq!(writes, vec![append("a", "2"), put, cas]);
        assert_eq!(
            kv.get("a").map(String::as_str),
            Some("1"),
            "reading changes nothing"
        );
    }

    #[test]
    fn reads_answer_once_the_writes_applied_and_not_when_lost() {
        let values = vec![Some("old".to_string()), None];
        let reads = || Reads {
            values: values.clone(),
            write_positions: vec![1],
        };
        let applied = reads_settled(reads(), Some(Outcome::Values(vec![None])));
        assert!(matches!(applied, Settled::Applied(Outcome::Values(v)) if v == values));
        assert!(matches!(reads_settled(reads(), None), Settled::Lost));
        assert!(matches!(
            reads_settled(reads(), Some(Outcome::Stale)),
            Settled::Applied(Outcome::Stale)
        ));
    }

    #[test]
    fn a_mismatch_in_the_writes_entry_is_reported_at_its_request_position() {
        let kv = KvState::new(1);
        let ops = vec![get("a"), cas("a", None, "1"), get("b"), cas("b", None, "2")];
        let (reads, writes) = split_reads_uncommitted(&kv, ops);
        assert_eq!(writes.len(), 2);
        let settled = reads_settled(reads, Some(mismatch(1, "9")));
        assert!(
            matches!(settled, Settled::Applied(outcome) if outcome == mismatch(3, "9")),
            "the second write is the request's micro-op 3"
        );
    }

    #[test]
    fn a_part_carries_one_micro_op_and_no_session() {
        let (command, reply) = first_part(vec![get("k"), append("k", "v"), get("k")]);
        assert_eq!((command.client, command.seq), (None, None));
        assert_eq!(
            command.op,
            KvOp::Txn {
                ops: vec![get("k")]
            }
        );
        let Reply::Parts(parts) = reply else {
            panic!("a txn in parts waits as parts");
        };
        assert_eq!(parts.rest, [append("k", "v"), get("k")]);
        assert!(parts.values.is_empty());
    }

    #[test]
    fn a_failed_part_is_definite_only_when_it_was_the_first() {
        let (_, reply) = first_part(vec![cas("a", None, "1"), cas("b", None, "2")]);
        let Reply::Parts(mut parts) = reply else {
            panic!("a txn in parts waits as parts");
        };
        let first = part_failed(&parts, Some(mismatch(0, "9")));
        assert!(
            matches!(first, Settled::Applied(outcome) if outcome == mismatch(0, "9")),
            "nothing applied: a definite mismatch"
        );
        assert!(matches!(part_failed(&parts, None), Settled::Lost));
        parts.values.push(None);
        let later = part_failed(&parts, Some(mismatch(0, "9")));
        assert!(
            matches!(later, Settled::Unknown),
            "the first cas stays applied: the outcome is unknown"
        );
        assert!(matches!(part_failed(&parts, None), Settled::Unknown));
    }
}
