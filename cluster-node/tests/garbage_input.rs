//! Arbitrary bytes from disk or network never panic the decoders: the WAL
//! either recovers or refuses with an error, the client codec rejects. A
//! damaged WAL recovers exactly the records before the damage, or refuses.
use std::fs;

use faultline_node::protocol::parse_request;
use faultline_node::wal::{Record, Wal, WalEntry, WalError};
use proptest::prelude::*;

/// Twenty entries, each record's bytes, and where each record ends.
fn valid_wal_bytes() -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    for index in 1..=20u64 {
        Record::Entry(WalEntry {
            index,
            term: 1,
            payload: vec![b'x'; (index * 7) as usize],
            config: false,
        })
        .encode_into(&mut bytes);
        ends.push(bytes.len());
    }
    (bytes, ends)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(42), ..ProptestConfig::default() })]

    #[test]
    fn random_segment_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), case in 0u32..1_000_000) {
        let dir = std::env::temp_dir().join(format!("fl-garbage-{}-{case}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("{:020}.wal", 1)), &bytes).unwrap();
        let _ = Wal::open(&dir, (0, 0), 1 << 20);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Every record wholly before the damaged one was fsynced and may have
    /// been acknowledged: it must come back, or the node must refuse. When the
    /// damage is not in the last record the file holds (bytes of a later
    /// record follow it), it cannot be a torn write, so the node must refuse,
    /// naming the damaged record's offset, rather than drop what follows.
    #[test]
    fn damaged_valid_wal_recovers_a_prefix_or_refuses(flip_at in 0usize..3000, flip_mask in 1u8..=255, cut in 0usize..3000, case in 0u32..1_000_000) {
        let (mut bytes, ends) = valid_wal_bytes();
        let flip_at = flip_at % bytes.len();
        bytes[flip_at] ^= flip_mask;
        bytes.truncate(cut.max(flip_at + 1).min(bytes.len()));
        let damaged = ends.iter().position(|&end| end > flip_at).expect("flip_at is inside the file");
        let damaged_start = if damaged == 0 { 0 } else { ends[damaged - 1] };
        let dir = std::env::temp_dir().join(format!("fl-damaged-{}-{case}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("{:020}.wal", 1)), &bytes).unwrap();
        let opened = Wal::open(&dir, (0, 0), 1 << 20);
        fs::remove_dir_all(&dir).unwrap();
        match opened {
            Ok((_, recovered)) => {
                prop_assert!(
                    bytes.len() <= ends[damaged],
                    "damage in record {} of a {}-byte file (record ends at {}) was cut off as a torn tail",
                    damaged + 1, bytes.len(), ends[damaged]
                );
                // Exactly the records before the damaged one survive.
                prop_assert_eq!(recovered.entries.len(), damaged);
                for (i, e) in recovered.entries.iter().enumerate() {
                    prop_assert_eq!(e.index, i as u64 + 1);
                    prop_assert_eq!(e.payload.len() as u64, e.index * 7);
                }
            }
            Err(WalError::Corrupt { offset, .. }) => {
                prop_assert_eq!(offset, damaged_start as u64);
            }
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }

    #[test]
    fn random_request_lines_are_rejected_not_panicked(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_request(&bytes);
    }

    #[test]
    fn random_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Record::decode(&bytes);
    }
}
