//! Binary encoding of `raft::Message` for the peer transport.
//!
//! JSON spells each byte of entry or snapshot data as a decimal number (up to
//! four bytes per byte, and slow to parse), so peers use this compact form:
//! little-endian `u64`s, one tag byte per enum, `u32` lengths before byte
//! strings and lists. Decoding checks every length against what is left, so
//! garbage from the network is an error, never a panic or a huge allocation.
use crate::raft::{AppendRejection, Entry, EntryKind, Message, MessageBody, SnapshotMeta};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message ends early")]
    Short,
    #[error("unknown message tag {0}")]
    Tag(u8),
    #[error("unknown entry kind {0}")]
    EntryKind(u8),
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

pub fn encode(m: &Message, out: &mut Vec<u8>) {
    put_u64(out, m.from);
    put_u64(out, m.to);
    put_u64(out, m.term);
    match &m.body {
        MessageBody::PreVote {
            last_index,
            last_term,
        } => put_tagged(out, 0, &[*last_index, *last_term]),
        MessageBody::PreVoteResponse { granted } => put_tagged(out, 1, &[u64::from(*granted)]),
        MessageBody::Vote {
            last_index,
            last_term,
            transfer,
        } => put_tagged(out, 2, &[*last_index, *last_term, u64::from(*transfer)]),
        MessageBody::VoteResponse { granted } => put_tagged(out, 3, &[u64::from(*granted)]),
        MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
        } => {
            put_tagged(out, 4, &[*prev_index, *prev_term, *commit]);
            put_len(out, entries.len());
            for e in entries {
                put_u64(out, e.term);
                put_u64(out, e.index);
                out.push(u8::from(e.kind == EntryKind::Config));
                put_bytes(out, &e.data);
            }
        }
        MessageBody::AppendResponse { index, rejection } => match rejection {
            None => put_tagged(out, 5, &[*index]),
            Some(r) => put_tagged(out, 6, &[*index, r.hint_index, r.hint_term]),
        },
        MessageBody::Heartbeat { commit, read_seq } => put_tagged(out, 7, &[*commit, *read_seq]),
        MessageBody::HeartbeatResponse { read_seq } => put_tagged(out, 8, &[*read_seq]),
        MessageBody::TimeoutNow => put_tagged(out, 11, &[]),
        MessageBody::InstallSnapshot {
            meta,
            offset,
            total_bytes,
            data,
            done,
        } => {
            put_tagged(
                out,
                9,
                &[
                    meta.last_index,
                    meta.last_term,
                    *offset,
                    *total_bytes,
                    u64::from(*done),
                ],
            );
            put_len(out, meta.voters.len());
            meta.voters.iter().for_each(|v| put_u64(out, *v));
            put_len(out, meta.learners.len());
            meta.learners.iter().for_each(|v| put_u64(out, *v));
            put_bytes(out, data);
        }
        MessageBody::InstallSnapshotResponse {
            last_index,
            offset_next,
            done,
        } => {
            put_tagged(out, 10, &[*last_index, *offset_next, u64::from(*done)]);
        }
    }
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_tagged(out: &mut Vec<u8>, tag: u8, fields: &[u64]) {
    out.push(tag);
    fields.iter().for_each(|f| put_u64(out, *f));
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("frames are far below 4 GiB, so are their lists");
    out.extend_from_slice(&len.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < n {
            return Err(WireError::Short);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("took 8 bytes"),
        ))
    }

    fn bool(&mut self) -> Result<bool, WireError> {
        Ok(self.u64()? != 0)
    }

    /// A list length, checked against the bytes left (each item is at least `item_bytes_min`).
    fn len(&mut self, item_bytes_min: usize) -> Result<usize, WireError> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("took 4 bytes")) as usize;
        if len.saturating_mul(item_bytes_min) > self.bytes.len() {
            return Err(WireError::Short);
        }
        Ok(len)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, WireError> {
        let len = self.len(1)?;
        Ok(self.take(len)?.to_vec())
    }
}

pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    let mut r = Reader { bytes };
    let (from, to, term) = (r.u64()?, r.u64()?, r.u64()?);
    let tag = r.take(1)?[0];
    let body = decode_body(tag, &mut r)?;
    if !r.bytes.is_empty() {
        return Err(WireError::Trailing(r.bytes.len()));
    }
    Ok(Message {
        from,
        to,
        term,
        body,
    })
}

fn decode_body(tag: u8, r: &mut Reader) -> Result<MessageBody, WireError> {
    Ok(match tag {
        0 => MessageBody::PreVote {
            last_index: r.u64()?,
            last_term: r.u64()?,
        },
        1 => MessageBody::PreVoteResponse { granted: r.bool()? },
        2 => MessageBody::Vote {
            last_index: r.u64()?,
            last_term: r.u64()?,
            transfer: r.bool()?,
        },
        3 => MessageBody::VoteResponse { granted: r.bool()? },
        4 => decode_append(r)?,
        5 => MessageBody::AppendResponse {
            index: r.u64()?,
            rejection: None,
        },
        6 => {
            let index = r.u64()?;
            let rejection = Some(AppendRejection {
                hint_index: r.u64()?,
                hint_term: r.u64()?,
            });
            MessageBody::AppendResponse { index, rejection }
        }
        7 => MessageBody::Heartbeat {
            commit: r.u64()?,
            read_seq: r.u64()?,
        },
        8 => MessageBody::HeartbeatResponse { read_seq: r.u64()? },
        9 => decode_install_snapshot(r)?,
        11 => MessageBody::TimeoutNow,
        10 => MessageBody::InstallSnapshotResponse {
            last_index: r.u64()?,
            offset_next: r.u64()?,
            done: r.bool()?,
        },
        other => return Err(WireError::Tag(other)),
    })
}

fn decode_append(r: &mut Reader) -> Result<MessageBody, WireError> {
    let (prev_index, prev_term, commit) = (r.u64()?, r.u64()?, r.u64()?);
    let count = r.len(21)?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let (term, index) = (r.u64()?, r.u64()?);
        let kind = match r.take(1)?[0] {
            0 => EntryKind::Normal,
            1 => EntryKind::Config,
            other => return Err(WireError::EntryKind(other)),
        };
        entries.push(Entry {
            term,
            index,
            data: r.bytes()?,
            kind,
        });
    }
    Ok(MessageBody::Append {
        prev_index,
        prev_term,
        entries,
        commit,
    })
}

fn decode_install_snapshot(r: &mut Reader) -> Result<MessageBody, WireError> {
    let (last_index, last_term, offset, total_bytes, done) =
        (r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.bool()?);
    let count = r.len(8)?;
    let voters = (0..count)
        .map(|_| r.u64())
        .collect::<Result<Vec<u64>, _>>()?;
    let count = r.len(8)?;
    let learners = (0..count)
        .map(|_| r.u64())
        .collect::<Result<Vec<u64>, _>>()?;
    let data = r.bytes()?;
    let meta = SnapshotMeta {
        last_index,
        last_term,
        voters,
        learners,
    };
    Ok(MessageBody::InstallSnapshot {
        meta,
        offset,
        total_bytes,
        data,
        done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<MessageBody> {
        let entries = vec![
            Entry {
                term: 2,
                index: 5,
                data: b"cmd".to_vec(),
                kind: EntryKind::Normal,
            },
            Entry {
                term: 2,
                index: 6,
                data: vec![],
                kind: EntryKind::Normal,
            },
            Entry {
                term: 2,
                index: 7,
                data: crate::raft::ConfChange::AddLearner(4).encode(),
                kind: EntryKind::Config,
            },
        ];
        let meta = SnapshotMeta {
            last_index: 9,
            last_term: 2,
            voters: vec![1, 2, 3],
            learners: vec![4],
        };
        vec![
            MessageBody::PreVote {
                last_index: 4,
                last_term: 1,
            },
            MessageBody::PreVoteResponse { granted: true },
            MessageBody::Vote {
                last_index: 4,
                last_term: 1,
                transfer: true,
            },
            MessageBody::TimeoutNow,
            MessageBody::VoteResponse { granted: false },
            MessageBody::Append {
                prev_index: 4,
                prev_term: 1,
                entries,
                commit: 3,
            },
            MessageBody::AppendResponse {
                index: 6,
                rejection: None,
            },
            MessageBody::AppendResponse {
                index: 6,
                rejection: Some(AppendRejection {
                    hint_index: 2,
                    hint_term: 1,
                }),
            },
            MessageBody::Heartbeat {
                commit: 6,
                read_seq: 11,
            },
            MessageBody::HeartbeatResponse { read_seq: 11 },
            MessageBody::InstallSnapshot {
                meta,
                offset: 0,
                total_bytes: 4,
                data: vec![1, 2, 3, 4],
                done: true,
            },
            MessageBody::InstallSnapshotResponse {
                last_index: 9,
                offset_next: 4,
                done: true,
            },
        ]
    }

    #[test]
    fn every_kind_round_trips_and_every_cut_is_an_error() {
        for body in every_kind() {
            let m = Message {
                from: 1,
                to: 2,
                term: 7,
                body,
            };
            let mut bytes = Vec::new();
            encode(&m, &mut bytes);
            assert_eq!(decode(&bytes), Ok(m.clone()));
            for cut in 0..bytes.len() {
                assert!(
                    decode(&bytes[..cut]).is_err(),
                    "{} cut at {cut}",
                    m.body.kind()
                );
            }
            bytes.push(0);
            assert_eq!(decode(&bytes), Err(WireError::Trailing(1)));
        }
    }

    #[test]
    fn absurd_lengths_are_refused_before_allocating() {
        let mut bytes = Vec::new();
        put_tagged(&mut bytes, 0, &[1, 2, 3]);
        bytes[0..24].copy_from_slice(&[0u8; 24]);
        bytes[24] = 4;
        bytes.extend_from_slice(&[0u8; 24]);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&bytes), Err(WireError::Short));
    }
}
