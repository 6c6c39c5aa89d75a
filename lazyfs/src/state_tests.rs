//! The state's fault paths on a real backing directory, without mounting.
use std::ffi::OsStr;
use std::path::PathBuf;

use super::*;
use crate::faults::TEAR_BYTES_DEFAULT;
use crate::inodes::ROOT;
use crate::volatile::PAGE_BYTES;

const PAGE: usize = PAGE_BYTES as usize;

/// A fresh backing directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-lazyfs-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Create `name` and open a handle on it, as a FUSE create would.
fn create(state: &mut State, name: &str) -> u64 {
    let (path, relative) = state.child(ROOT, OsStr::new(name)).unwrap();
    File::create(&path).unwrap();
    let ino = state.entry(&path, &relative).unwrap().ino.0;
    state.new_handle(ino).unwrap();
    ino
}

/// The file as readers of the mount see it.
fn seen(state: &State, ino: u64) -> Vec<u8> {
    let open = &state.open[&ino];
    open.volatile.read(&open.file, 0, 1 << 20).unwrap()
}

fn disk(state: &State, name: &str) -> Vec<u8> {
    std::fs::read(state.root.join(name)).unwrap()
}

#[test]
fn a_write_fault_answers_before_anything_is_stored() {
    let dir = scratch("write");
    let mut state = State::new(dir.clone(), 1 << 20);
    let ino = create(&mut state, "wal");
    state.write(ino, 0, b"kept").unwrap();
    state.faults.write = WriteFault::Eio;
    assert_eq!(state.write(ino, 4, b"eio"), Err(Errno::EIO));
    state.faults.write = WriteFault::Enospc;
    assert_eq!(state.write(ino, PAGE_BYTES, b"full"), Err(Errno::ENOSPC));
    assert_eq!(seen(&state, ino), b"kept");
    assert_eq!(state.dirty_bytes, PAGE_BYTES, "the refused writes dirtied nothing");
    state.faults.write = WriteFault::Ok;
    state.write(ino, 4, b" more").unwrap();
    state.fsync(ino).unwrap();
    assert_eq!(disk(&state, "wal"), b"kept more");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_fsync_keeps_the_pages_readable_but_nothing_ever_writes_them() {
    let dir = scratch("fsyncgate");
    // A bound of two pages: the third dirty page forces a writeback.
    let mut state = State::new(dir.clone(), 2 * PAGE_BYTES);
    let wal = create(&mut state, "wal");
    state.write(wal, 0, b"durable").unwrap();
    state.fsync(wal).unwrap();
    state.write(wal, 7, b" lost").unwrap();
    state.faults.fsync = FsyncFault::Eio;
    assert_eq!(state.fsync(wal), Err(Errno::EIO));
    assert_eq!(state.dirty_bytes, 0, "poisoned pages are not dirty");
    state.faults.fsync = FsyncFault::Ok;
    state.fsync(wal).unwrap(); // The retry "succeeds".
    assert_eq!(seen(&state, wal), b"durable lost", "readers still see the lost write");
    assert_eq!(disk(&state, "wal"), b"durable\0\0\0\0\0", "the size is durable, the bytes never are");
    // Neither the dirty bound's writeback nor a clean stop writes them.
    let other = create(&mut state, "other");
    state.write(other, 0, &[1u8; 3 * PAGE]).unwrap();
    assert_eq!(state.writebacks, 1);
    assert_eq!(disk(&state, "other"), [1u8; 3 * PAGE]);
    state.release(1);
    state.sync_all().unwrap();
    assert_eq!(disk(&state, "wal"), b"durable\0\0\0\0\0");
    assert_eq!(seen(&state, wal), b"durable lost", "a released file keeps its poisoned page for readers");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_rewrite_makes_a_poisoned_page_durable_again() {
    let dir = scratch("rewrite");
    let mut state = State::new(dir.clone(), 1 << 20);
    let wal = create(&mut state, "wal");
    state.write(wal, 0, b"first").unwrap();
    state.write(wal, PAGE_BYTES, b"second page").unwrap();
    state.faults.fsync = FsyncFault::Eio;
    assert_eq!(state.fsync(wal), Err(Errno::EIO));
    state.faults.fsync = FsyncFault::Ok;
    state.write(wal, 0, b"FIRST").unwrap();
    assert_eq!(state.dirty_bytes, PAGE_BYTES, "only the rewritten page is dirty again");
    state.fsync(wal).unwrap();
    let on_disk = disk(&state, "wal");
    assert_eq!(&on_disk[..5], b"FIRST");
    assert_eq!(on_disk.len(), PAGE + 11);
    assert!(on_disk[PAGE..].iter().all(|b| *b == 0), "the other poisoned page stays lost");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_torn_cut_writes_the_start_of_the_page_written_last_and_the_pages_before_it() {
    let dir = scratch("tear");
    let mut state = State::new(dir.clone(), 1 << 20);
    assert_eq!(state.faults.tear_bytes, TEAR_BYTES_DEFAULT);
    assert_eq!(state.tear().unwrap(), None, "nothing dirty, nothing torn");
    let a = create(&mut state, "a");
    let b = create(&mut state, "b");
    let pattern: Vec<u8> = (0..PAGE).map(|i| (i % 251) as u8).collect();
    state.write(b, PAGE_BYTES, &[9u8; PAGE]).unwrap();
    state.write(a, 0, &[7u8; PAGE]).unwrap();
    state.write(b, 0, &pattern).unwrap();
    state.faults.tear_bytes = 100;
    let torn = state.tear().unwrap().unwrap();
    assert_eq!(torn, Torn { path: Some(dir.join("b")), offset: 0, bytes: 100 });
    assert_eq!(disk(&state, "b"), &pattern[..100], "b's page above the torn one is lost");
    assert_eq!(disk(&state, "a"), b"", "no other file's page is written");
    // Once b is synced, a's page is the last dirty one written; a torn
    // page past the end of the backing file extends it.
    state.fsync(b).unwrap();
    state.write(a, 2 * PAGE_BYTES, b"tail").unwrap();
    let torn = state.tear().unwrap().unwrap();
    assert_eq!((torn.offset, torn.bytes), (2 * PAGE_BYTES, 4), "never past the size readers see");
    assert_eq!(disk(&state, "a")[2 * PAGE..], *b"tail");
    assert_eq!(disk(&state, "a")[..PAGE], [7u8; PAGE], "the unsynced page below the torn one, whole: no hole");
    state.faults.fsync = FsyncFault::Eio;
    let _ = state.fsync(a);
    assert_eq!(state.tear().unwrap(), None, "a poisoned page is not torn");
    std::fs::remove_dir_all(&dir).unwrap();
}
