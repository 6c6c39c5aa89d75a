//! The replicated state machine: a string key-value map plus a bounded
//! session table so a retried (client, seq) command is applied at most once.
//!
//! Everything here is a pure function of the applied command sequence, so
//! every replica (and a replica rebuilt from a snapshot) reaches the same state.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod txn;

/// Default bound on remembered client sessions.
pub const SESSIONS_MAX_DEFAULT: usize = 10_000;

/// A write as it travels through the Raft log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum KvOp {
    Put {
        key: String,
        value: String,
    },
    Cas {
        key: String,
        from: Option<String>,
        to: String,
    },
    Append {
        key: String,
        value: String,
    },
    Delete {
        key: String,
    },
    /// A transaction: its micro-ops apply in order, all in this one entry,
    /// so no other command sees a part of it; with a `cas` that fails, none
    /// of them applies.
    Txn {
        ops: Vec<TxnOp>,
    },
}

/// One micro-op of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum TxnOp {
    /// Reads the key as the transaction's earlier micro-ops left it.
    Get {
        key: String,
    },
    Put {
        key: String,
        value: String,
    },
    /// Concatenates like `KvOp::Append`, but answers `null`.
    Append {
        key: String,
        value: String,
    },
    /// Sets `to` if the key holds `from` (`None`: absent) as the
    /// transaction's earlier micro-ops left it; otherwise the whole
    /// transaction applies nothing. Answers `null`.
    Cas {
        key: String,
        from: Option<String>,
        to: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub client: Option<String>,
    pub seq: Option<u64>,
    pub op: KvOp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Applied; for `append` the new value.
    Ok(Option<String>),
    /// `cas` found a different current value (carried here); nothing changed.
    CasMismatch(Option<String>),
    /// An older seq than the client's last applied one: its result is gone.
    Stale,
    /// Applied transaction: one value per micro-op, `None` for writes.
    Values(Vec<Option<String>>),
    /// A transaction's `cas` at `position` (0-based, among its micro-ops)
    /// found `current` there, as the earlier micro-ops left it; nothing of
    /// the transaction changed.
    TxnCasMismatch {
        position: u64,
        current: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    seq: u64,
    outcome: Outcome,
    /// Log index that last touched the session; the oldest is evicted first.
    index: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("cannot decode state machine snapshot: {0}")]
    Snapshot(serde_json::Error),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvState {
    data: BTreeMap<String, String>,
    sessions: BTreeMap<String, Session>,
    sessions_max: usize,
    /// Order-independent digest of `data`, kept up to date on every change so
    /// `status` can report it without walking the map.
    #[serde(skip)]
    digest: u64,
}

/// One pair's share of the digest; the digest is the wrapping sum of shares.
fn pair_digest(key: &str, value: &str) -> u64 {
    let key_crc = crc32c::crc32c(key.as_bytes());
    let value_crc = crc32c::crc32c_append(key_crc, value.as_bytes());
    (u64::from(key_crc) << 32) | u64::from(value_crc)
}

impl KvState {
    pub fn new(sessions_max: usize) -> KvState {
        assert!(sessions_max > 0, "sessions_max must be positive");
        KvState {
            data: BTreeMap::new(),
            sessions: BTreeMap::new(),
            sessions_max,
            digest: 0,
        }
    }

    /// Equal on replicas holding equal data (sessions aside).
    pub fn digest(&self) -> u64 {
        self.digest
    }

    fn set(&mut self, key: &str, value: String) -> &String {
        self.remove(key);
        self.digest = self.digest.wrapping_add(pair_digest(key, &value));
        self.data.entry(key.to_string()).or_insert(value)
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.data.remove(key) {
            self.digest = self.digest.wrapping_sub(pair_digest(key, &old));
        }
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.data.get(key)
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Applies the command committed at log `index`.
    pub fn apply(&mut self, index: u64, command: &Command) -> Outcome {
        let (Some(client), Some(seq)) = (&command.client, command.seq) else {
            return self.apply_op(&command.op);
        };
        if let Some(session) = self.sessions.get(client) {
            if seq == session.seq {
                return session.outcome.clone();
            }
            if seq < session.seq {
                return Outcome::Stale;
            }
        }
        let outcome = self.apply_op(&command.op);
        self.remember(client, seq, index, outcome.clone());
        outcome
    }

    fn remember(&mut self, client: &str, seq: u64, index: u64, outcome: Outcome) {
        if !self.sessions.contains_key(client) && self.sessions.len() >= self.sessions_max {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.index)
                .map(|(c, _)| c.clone());
            if let Some(oldest) = oldest {
                self.sessions.remove(&oldest);
            }
        }
        self.sessions.insert(
            client.to_string(),
            Session {
                seq,
                outcome,
                index,
            },
        );
        assert!(
            self.sessions.len() <= self.sessions_max,
            "session table over its bound"
        );
    }

    fn apply_op(&mut self, op: &KvOp) -> Outcome {
        match op {
            KvOp::Put { key, value } => {
                self.set(key, value.clone());
                Outcome::Ok(None)
            }
            KvOp::Cas { key, from, to } => {
                let current = self.data.get(key);
                if current != from.as_ref() {
                    return Outcome::CasMismatch(current.cloned());
                }
                self.set(key, to.clone());
                Outcome::Ok(None)
            }
            KvOp::Append { key, value } => {
                let mut new_value = self.data.get(key).cloned().unwrap_or_default();
                new_value.push_str(value);
                Outcome::Ok(Some(self.set(key, new_value).clone()))
            }
            KvOp::Delete { key } => {
                self.remove(key);
                Outcome::Ok(None)
            }
            KvOp::Txn { ops } => self.apply_txn(ops),
        }
    }

    /// All or nothing: the outcome and writes are worked out first against
    /// the data as the transaction itself changes it, then written, so a
    /// failing `cas` leaves nothing to roll back.
    fn apply_txn(&mut self, ops: &[TxnOp]) -> Outcome {
        match txn::plan(&self.data, ops) {
            Ok(txn::Commit { values, writes }) => {
                for (key, value) in writes {
                    self.set(&key, value);
                }
                Outcome::Values(values)
            }
            Err(txn::Mismatch { position, current }) => {
                Outcome::TxnCasMismatch { position, current }
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a map of strings always serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<KvState, KvError> {
        let mut state: KvState = serde_json::from_slice(bytes).map_err(KvError::Snapshot)?;
        state.digest = state
            .data
            .iter()
            .fold(0u64, |sum, (k, v)| sum.wrapping_add(pair_digest(k, v)));
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn cmd(client: Option<&str>, seq: Option<u64>, op: KvOp) -> Command {
        Command {
            client: client.map(str::to_string),
            seq,
            op,
        }
    }

    pub(super) fn append(key: &str, value: &str) -> KvOp {
        KvOp::Append {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn operations_follow_their_semantics() {
        let mut kv = KvState::new(4);
        let put = KvOp::Put {
            key: "k".into(),
            value: "a".into(),
        };
        assert_eq!(kv.apply(1, &cmd(None, None, put)), Outcome::Ok(None));
        let bad_cas = KvOp::Cas {
            key: "k".into(),
            from: Some("z".into()),
            to: "b".into(),
        };
        assert_eq!(
            kv.apply(2, &cmd(None, None, bad_cas)),
            Outcome::CasMismatch(Some("a".into()))
        );
        let cas = KvOp::Cas {
            key: "k".into(),
            from: Some("a".into()),
            to: "b".into(),
        };
        assert_eq!(kv.apply(3, &cmd(None, None, cas)), Outcome::Ok(None));
        assert_eq!(
            kv.apply(4, &cmd(None, None, append("k", "c"))),
            Outcome::Ok(Some("bc".into()))
        );
        assert_eq!(
            kv.apply(5, &cmd(None, None, KvOp::Delete { key: "k".into() })),
            Outcome::Ok(None)
        );
        assert_eq!(kv.get("k"), None);
        let cas_absent = KvOp::Cas {
            key: "k".into(),
            from: None,
            to: "n".into(),
        };
        assert_eq!(kv.apply(6, &cmd(None, None, cas_absent)), Outcome::Ok(None));
        assert_eq!(kv.get("k").map(String::as_str), Some("n"));
    }

    #[test]
    fn retried_command_applies_once() {
        let mut kv = KvState::new(4);
        let first = kv.apply(1, &cmd(Some("c1"), Some(1), append("k", "x")));
        let retry = kv.apply(2, &cmd(Some("c1"), Some(1), append("k", "x")));
        assert_eq!(first, retry);
        assert_eq!(kv.get("k").map(String::as_str), Some("x"));
        kv.apply(3, &cmd(Some("c1"), Some(2), append("k", "y")));
        assert_eq!(
            kv.apply(4, &cmd(Some("c1"), Some(1), append("k", "x"))),
            Outcome::Stale
        );
        assert_eq!(kv.get("k").map(String::as_str), Some("xy"));
    }

    #[test]
    fn session_table_is_bounded_and_evicts_oldest() {
        let mut kv = KvState::new(2);
        kv.apply(1, &cmd(Some("a"), Some(1), append("k", "1")));
        kv.apply(2, &cmd(Some("b"), Some(1), append("k", "2")));
        kv.apply(3, &cmd(Some("c"), Some(1), append("k", "3")));
        assert_eq!(kv.sessions.len(), 2);
        assert!(!kv.sessions.contains_key("a"));
        // "a" was forgotten, so its retry applies again: the documented cost of the bound.
        kv.apply(4, &cmd(Some("a"), Some(1), append("k", "1")));
        assert_eq!(kv.get("k").map(String::as_str), Some("1231"));
    }

    #[test]
    fn digest_depends_on_content_not_history() {
        let mut a = KvState::new(4);
        let mut b = KvState::new(4);
        a.apply(1, &cmd(None, None, append("x", "1")));
        a.apply(
            2,
            &cmd(
                None,
                None,
                KvOp::Put {
                    key: "y".into(),
                    value: "2".into(),
                },
            ),
        );
        b.apply(
            1,
            &cmd(
                None,
                None,
                KvOp::Put {
                    key: "y".into(),
                    value: "0".into(),
                },
            ),
        );
        assert_ne!(a.digest(), b.digest());
        b.apply(
            2,
            &cmd(
                None,
                None,
                KvOp::Put {
                    key: "x".into(),
                    value: "1".into(),
                },
            ),
        );
        b.apply(
            3,
            &cmd(
                None,
                None,
                KvOp::Put {
                    key: "y".into(),
                    value: "2".into(),
                },
            ),
        );
        assert_eq!(a.digest(), b.digest());
        a.apply(3, &cmd(None, None, KvOp::Delete { key: "x".into() }));
        b.apply(4, &cmd(None, None, KvOp::Delete { key: "x".into() }));
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), KvState::new(4).digest());
    }

    #[test]
    fn snapshot_round_trips_and_rejects_garbage() {
        let mut kv = KvState::new(3);
        kv.apply(1, &cmd(Some("a"), Some(7), append("k", "v")));
        let restored = KvState::from_bytes(&kv.to_bytes()).unwrap();
        assert_eq!(restored, kv);
        assert_eq!(restored.digest(), kv.digest());
        assert!(KvState::from_bytes(b"{not json").is_err());
    }
}
