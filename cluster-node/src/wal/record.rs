//! WAL record framing:
//! `[payload_len u32 LE][crc32c(payload) u32 LE][crc32c(first 8 bytes) u32 LE][payload]`.
//!
//! The header checksum lets recovery trust the length: without it, one flipped
//! high bit in a length mid-file reads as "the record runs past the end of
//! the file", which looks exactly like a torn tail and would be cut off with
//! every record after it. With it, a record that runs past the end of the file
//! is a torn tail only when its header is intact.
//!
//! The payload starts with a kind byte. Integers are little-endian `u64` so the
//! on-disk format does not depend on the platform.

/// Bytes before the payload: length, payload checksum, header checksum.
pub const FRAME_HEADER_BYTES: usize = 12;
/// The header bytes the header checksum covers (length and payload checksum).
const HEADER_CHECKED_BYTES: usize = 8;
/// Largest payload accepted on read or write; a bigger length field is corruption.
pub const PAYLOAD_BYTES_MAX: usize = 64 * 1024 * 1024;

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_SNAPSHOT_MARK: u8 = 3;
/// An entry whose payload is a membership change (same layout as an entry).
const KIND_CONFIG_ENTRY: u8 = 4;

/// Raft's durable vote state; must be on disk before any message that depends on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

/// One log entry as the WAL stores it; `payload` is opaque to the WAL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalEntry {
    pub index: u64,
    pub term: u64,
    pub payload: Vec<u8>,
    /// A membership change rather than a state-machine command.
    pub config: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Appending entry `index` drops any entries at or after `index` (Raft conflict truncation).
    Entry(WalEntry),
    HardState(HardState),
    /// The log is compacted (or replaced by an installed snapshot) up to `index`.
    SnapshotMark {
        index: u64,
        term: u64,
    },
}

/// Why one frame could not be decoded; the reader decides torn tail vs corruption.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The file ends inside this frame: fewer bytes than a header, or an
    /// intact header whose length runs past the end. Only a torn write (or a
    /// truncated file) leaves this.
    Short,
    /// The header checksum does not match: the length cannot be trusted.
    BadHeader,
    /// The header checksum matches but the length is out of range.
    BadLength(u32),
    BadChecksum,
    BadPayload(&'static str),
}

impl Record {
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
        match self {
            Record::Entry(e) => {
                out.push(if e.config { KIND_CONFIG_ENTRY } else { KIND_ENTRY });
                out.extend_from_slice(&e.index.to_le_bytes());
                out.extend_from_slice(&e.term.to_le_bytes());
                out.extend_from_slice(&e.payload);
            }
            Record::HardState(hs) => {
                out.push(KIND_HARD_STATE);
                out.extend_from_slice(&hs.term.to_le_bytes());
                out.extend_from_slice(&hs.vote.to_le_bytes());
                out.extend_from_slice(&hs.commit.to_le_bytes());
            }
            Record::SnapshotMark { index, term } => {
                out.push(KIND_SNAPSHOT_MARK);
                out.extend_from_slice(&index.to_le_bytes());
                out.extend_from_slice(&term.to_le_bytes());
            }
        }
        let payload_len = out.len() - start - FRAME_HEADER_BYTES;
        assert!(
            payload_len <= PAYLOAD_BYTES_MAX,
            "WAL record of {payload_len} bytes exceeds the limit"
        );
        let crc = crc32c::crc32c(&out[start + FRAME_HEADER_BYTES..]);
        out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        let header_crc = crc32c::crc32c(&out[start..start + HEADER_CHECKED_BYTES]);
        out[start + 8..start + 12].copy_from_slice(&header_crc.to_le_bytes());
    }

    /// Decodes the frame at the start of `bytes`; returns the record and the frame's size.
    pub fn decode(bytes: &[u8]) -> Result<(Record, usize), FrameError> {
        if bytes.len() < FRAME_HEADER_BYTES {
            return Err(FrameError::Short);
        }
        let payload_len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        let header_crc = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if crc32c::crc32c(&bytes[..HEADER_CHECKED_BYTES]) != header_crc {
            return Err(FrameError::BadHeader);
        }
        if payload_len == 0 || payload_len as usize > PAYLOAD_BYTES_MAX {
            return Err(FrameError::BadLength(payload_len));
        }
        let frame_bytes = FRAME_HEADER_BYTES + payload_len as usize;
        if bytes.len() < frame_bytes {
            return Err(FrameError::Short);
        }
        let payload = &bytes[FRAME_HEADER_BYTES..frame_bytes];
        if crc32c::crc32c(payload) != crc {
            return Err(FrameError::BadChecksum);
        }
        Ok((decode_payload(payload)?, frame_bytes))
    }
}

/// What a frame that failed a check still yields when checksums are
/// ignored (the planted `wal-ignore-crc` bug): the frame's size, taken from
/// its length field unchecked, and its payload decoded, or why that payload
/// does not decode. `None` when the length is out of range or runs past the
/// end of `bytes`: then nothing says where the next frame starts.
pub fn decode_ignoring_checksums(bytes: &[u8]) -> Option<(Result<Record, FrameError>, usize)> {
    let payload_len = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    if payload_len == 0 || payload_len > PAYLOAD_BYTES_MAX {
        return None;
    }
    let frame_bytes = FRAME_HEADER_BYTES + payload_len;
    let payload = bytes.get(FRAME_HEADER_BYTES..frame_bytes)?;
    Some((decode_payload(payload), frame_bytes))
}

fn decode_payload(payload: &[u8]) -> Result<Record, FrameError> {
    let body = &payload[1..];
    match payload[0] {
        kind @ (KIND_ENTRY | KIND_CONFIG_ENTRY) => {
            let (index, term) = two_u64(body).ok_or(FrameError::BadPayload("entry header"))?;
            Ok(Record::Entry(WalEntry {
                index,
                term,
                payload: body[16..].to_vec(),
                config: kind == KIND_CONFIG_ENTRY,
            }))
        }
        KIND_HARD_STATE if body.len() == 24 => {
            let (term, vote) = two_u64(body).ok_or(FrameError::BadPayload("hard state"))?;
            let commit = u64::from_le_bytes(body[16..24].try_into().expect("8 bytes"));
            Ok(Record::HardState(HardState { term, vote, commit }))
        }
        KIND_SNAPSHOT_MARK if body.len() == 16 => {
            let (index, term) = two_u64(body).ok_or(FrameError::BadPayload("snapshot mark"))?;
            Ok(Record::SnapshotMark { index, term })
        }
        _ => Err(FrameError::BadPayload("unknown kind or wrong size")),
    }
}

fn two_u64(body: &[u8]) -> Option<(u64, u64)> {
    let a = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let b = u64::from_le_bytes(body.get(8..16)?.try_into().ok()?);
    Some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let records = vec![
            Record::Entry(WalEntry {
                index: 7,
                term: 3,
                payload: b"hello".to_vec(),
                config: false,
            }),
            Record::Entry(WalEntry {
                index: 8,
                term: 3,
                payload: vec![],
                config: false,
            }),
            Record::Entry(WalEntry {
                index: 9,
                term: 3,
                payload: vec![1, 4, 0, 0, 0, 0, 0, 0, 0],
                config: true,
            }),
            Record::HardState(HardState {
                term: 3,
                vote: 2,
                commit: 7,
            }),
            Record::SnapshotMark { index: 5, term: 2 },
        ];
        let mut bytes = Vec::new();
        for r in &records {
            r.encode_into(&mut bytes);
        }
        let mut offset = 0;
        for r in &records {
            let (decoded, used) = Record::decode(&bytes[offset..]).unwrap();
            assert_eq!(&decoded, r);
            offset += used;
        }
        assert_eq!(offset, bytes.len());
    }

    #[test]
    fn flipped_bit_fails_checksum() {
        let mut bytes = Vec::new();
        Record::HardState(HardState {
            term: 1,
            vote: 1,
            commit: 0,
        })
        .encode_into(&mut bytes);
        bytes[FRAME_HEADER_BYTES + 4] ^= 0x10;
        assert_eq!(Record::decode(&bytes), Err(FrameError::BadChecksum));
    }

    #[test]
    fn flipped_header_bit_fails_the_header_checksum() {
        let mut frame = Vec::new();
        Record::SnapshotMark { index: 1, term: 1 }.encode_into(&mut frame);
        for byte in 0..FRAME_HEADER_BYTES {
            for bit in 0..8 {
                let mut bytes = frame.clone();
                bytes[byte] ^= 1 << bit;
                // Even a length now running past the end is not `Short`.
                assert_eq!(
                    Record::decode(&bytes),
                    Err(FrameError::BadHeader),
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn ignoring_checksums_decodes_what_the_length_frames() {
        let mut frame = Vec::new();
        Record::SnapshotMark { index: 1, term: 1 }.encode_into(&mut frame);
        let mut damaged = frame.clone();
        damaged[8] ^= 0x01;
        damaged[FRAME_HEADER_BYTES + 1] ^= 0x02;
        assert_eq!(Record::decode(&damaged), Err(FrameError::BadHeader));
        let (salvaged, used) = decode_ignoring_checksums(&damaged).expect("the length is in range");
        assert_eq!((salvaged, used), (Ok(Record::SnapshotMark { index: 3, term: 1 }), frame.len()));
        damaged[FRAME_HEADER_BYTES] = 0x7f;
        let (salvaged, used) = decode_ignoring_checksums(&damaged).expect("the length is in range");
        assert!(matches!(salvaged, Err(FrameError::BadPayload(_))) && used == frame.len());
        assert!(decode_ignoring_checksums(&damaged[..frame.len() - 1]).is_none(), "runs past the end");
        damaged[0..4].copy_from_slice(&0u32.to_le_bytes());
        assert!(decode_ignoring_checksums(&damaged).is_none(), "length zero");
    }

    #[test]
    fn cut_frame_is_short_and_zeroes_are_a_bad_header() {
        let mut bytes = Vec::new();
        Record::SnapshotMark { index: 1, term: 1 }.encode_into(&mut bytes);
        for cut in 0..bytes.len() {
            assert_eq!(
                Record::decode(&bytes[..cut]),
                Err(FrameError::Short),
                "cut at {cut}"
            );
        }
        assert_eq!(Record::decode(&[0u8; 32]), Err(FrameError::BadHeader));
    }
}
