//! The journal, the trash and the undo on a real backing directory,
//! without mounting: dropping a `DirOps` without `commit_all` is the power
//! cut, and `recover` is what the next daemon does before it mounts.
use std::fs::File;
use std::io::Write;

use super::*;
use crate::undo::recover;

/// A fresh backing directory (with no journal or trash beside it).
fn scratch(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("faultline-lazyfs-dirops-{name}-{}", std::process::id()));
    for path in [&root, &sibling(&root, JOURNAL_SUFFIX), &sibling(&root, TRASH_SUFFIX)] {
        remove_tree(path).unwrap();
    }
    std::fs::create_dir_all(&root).unwrap();
    root
}

fn clean_up(root: &Path) {
    for path in [root, &sibling(root, JOURNAL_SUFFIX), &sibling(root, TRASH_SUFFIX)] {
        remove_tree(path).unwrap();
    }
}

/// Create a file through the journal, with `bytes` in it written and
/// synced (the file's data is durable; its entry is what is at stake).
fn create(ops: &mut DirOps, root: &Path, name: &str, bytes: &[u8]) {
    ops.new_entry(Path::new(name), |path| File::create_new(path).map(drop)).unwrap();
    let mut file = File::options().write(true).open(root.join(name)).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

fn mkdir(ops: &mut DirOps, name: &str) {
    ops.new_entry(Path::new(name), |path| std::fs::create_dir(path)).unwrap();
}

/// The power cut and the next daemon's start-up; returns how many
/// operations were undone.
fn cut(ops: DirOps, root: &Path) -> u64 {
    drop(ops);
    recover(root).unwrap().map_or(0, |recovered| recovered.undone)
}

fn read(root: &Path, name: &str) -> Option<Vec<u8>> {
    std::fs::read(root.join(name)).ok()
}

#[test]
fn a_create_is_lost_at_a_cut_unless_its_directory_was_fsynced() {
    let root = scratch("create");
    let mut ops = DirOps::new(root.clone());
    create(&mut ops, &root, "lost", b"data");
    assert_eq!(read(&root, "lost").as_deref(), Some(&b"data"[..]), "the backing directory has it until the cut");
    assert_eq!(cut(ops, &root), 1);
    assert_eq!(read(&root, "lost"), None, "no fsync of its directory: the entry, and its data, are gone");

    let mut ops = DirOps::new(root.clone());
    create(&mut ops, &root, "kept", b"data");
    ops.sync_dir(Path::new("")).unwrap();
    create(&mut ops, &root, "after", b"late");
    assert_eq!(ops.pending(), 1);
    assert_eq!(cut(ops, &root), 1, "only the create after the fsync is undone");
    assert_eq!(read(&root, "kept").as_deref(), Some(&b"data"[..]));
    assert_eq!(read(&root, "after"), None);
    assert_eq!(recover(&root).unwrap(), None, "the journal was applied once and removed");
    clean_up(&root);
}

#[test]
fn an_unlink_undone_restores_the_file_with_its_content() {
    let root = scratch("unlink");
    std::fs::write(root.join("wal"), b"durable bytes").unwrap();
    std::fs::create_dir(root.join("empty")).unwrap();
    let mut ops = DirOps::new(root.clone());
    assert_eq!(ops.remove(Path::new("empty"), false), Err(Errno::EISDIR));
    assert_eq!(ops.remove(Path::new("wal"), true), Err(Errno::ENOTDIR));
    ops.remove(Path::new("wal"), false).unwrap();
    ops.remove(Path::new("empty"), true).unwrap();
    assert_eq!(read(&root, "wal"), None);
    assert!(!root.join("empty").exists());
    assert_eq!(cut(ops, &root), 2);
    assert_eq!(read(&root, "wal").as_deref(), Some(&b"durable bytes"[..]));
    assert!(root.join("empty").is_dir());

    // Once the directory is fsynced the removal is final: the trash is
    // emptied at once.
    let mut ops = DirOps::new(root.clone());
    ops.remove(Path::new("wal"), false).unwrap();
    assert_eq!(std::fs::read_dir(sibling(&root, TRASH_SUFFIX)).unwrap().count(), 1);
    ops.sync_dir(Path::new("")).unwrap();
    assert_eq!(std::fs::read_dir(sibling(&root, TRASH_SUFFIX)).unwrap().count(), 0);
    assert_eq!(cut(ops, &root), 0);
    assert_eq!(read(&root, "wal"), None);
    clean_up(&root);
}

#[test]
fn a_rename_over_an_existing_target_undone_restores_both() {
    let root = scratch("rename");
    std::fs::write(root.join("snapshot"), b"old").unwrap();
    std::fs::write(root.join("snapshot.tmp"), b"new").unwrap();
    std::fs::create_dir(root.join("dir")).unwrap();
    let mut ops = DirOps::new(root.clone());
    assert_eq!(ops.rename(Path::new("snapshot.tmp"), Path::new("snapshot"), true), Err(Errno::EEXIST));
    assert_eq!(ops.rename(Path::new("snapshot.tmp"), Path::new("dir"), false), Err(Errno::EISDIR));
    assert_eq!(ops.rename(Path::new("dir"), Path::new("snapshot"), false), Err(Errno::ENOTDIR));
    ops.rename(Path::new("snapshot.tmp"), Path::new("snapshot"), false).unwrap();
    assert_eq!(read(&root, "snapshot").as_deref(), Some(&b"new"[..]));
    assert_eq!(read(&root, "snapshot.tmp"), None);
    assert_eq!(cut(ops, &root), 1, "the refused renames left nothing to undo");
    assert_eq!(read(&root, "snapshot").as_deref(), Some(&b"old"[..]));
    assert_eq!(read(&root, "snapshot.tmp").as_deref(), Some(&b"new"[..]));

    // Across directories, an fsync of either parent makes it durable.
    let mut ops = DirOps::new(root.clone());
    ops.rename(Path::new("snapshot.tmp"), Path::new("dir/moved"), false).unwrap();
    ops.sync_dir(Path::new("")).unwrap();
    ops.rename(Path::new("dir/moved"), Path::new("back"), false).unwrap();
    ops.sync_dir(Path::new("dir")).unwrap();
    assert_eq!(cut(ops, &root), 0);
    assert_eq!(read(&root, "back").as_deref(), Some(&b"new"[..]));
    clean_up(&root);
}

#[test]
fn a_directory_never_fsynced_in_its_parent_is_lost_with_the_synced_file_in_it() {
    let root = scratch("mkdir");
    let mut ops = DirOps::new(root.clone());
    mkdir(&mut ops, "wal");
    create(&mut ops, &root, "wal/1.log", b"entries");
    ops.sync_dir(Path::new("wal")).unwrap(); // The file's entry is durable in wal...
    assert_eq!(ops.pending(), 1, "...but wal's entry in the root is not");
    assert_eq!(cut(ops, &root), 1);
    assert!(!root.join("wal").exists(), "the directory and the file in it are gone");

    let mut ops = DirOps::new(root.clone());
    mkdir(&mut ops, "wal");
    ops.sync_dir(Path::new("")).unwrap();
    create(&mut ops, &root, "wal/1.log", b"entries");
    assert_eq!(cut(ops, &root), 1);
    assert!(root.join("wal").is_dir(), "the directory's entry was durable...");
    assert_eq!(read(&root, "wal/1.log"), None, "...the file's was not");
    clean_up(&root);
}

#[test]
fn a_durable_rename_of_a_directory_carries_the_undo_of_what_is_inside() {
    let root = scratch("follow");
    std::fs::create_dir(root.join("a")).unwrap();
    let mut ops = DirOps::new(root.clone());
    create(&mut ops, &root, "a/pending", b"x");
    ops.rename(Path::new("a"), Path::new("b"), false).unwrap();
    ops.sync_dir(Path::new("")).unwrap(); // The rename is durable, the create is not.
    mkdir(&mut ops, "a");
    create(&mut ops, &root, "a/pending", b"new");
    ops.sync_dir(Path::new("")).unwrap();
    ops.sync_dir(Path::new("a")).unwrap();
    assert_eq!(cut(ops, &root), 1);
    assert!(root.join("b").is_dir());
    assert_eq!(read(&root, "b/pending"), None, "undone where the durable rename moved it");
    assert_eq!(read(&root, "a/pending").as_deref(), Some(&b"new"[..]), "the durable entry of the same name stays");
    clean_up(&root);
}

#[test]
fn a_failed_operation_leaves_nothing_to_undo() {
    let root = scratch("failed");
    std::fs::write(root.join("taken"), b"mine").unwrap();
    let mut ops = DirOps::new(root.clone());
    // An exclusive create of an existing name, and a mkdir in a missing
    // directory: nothing was created, so nothing may be removed.
    let exclusive = ops.new_entry(Path::new("taken"), |path| File::create_new(path).map(drop));
    assert_eq!(exclusive, Err(Errno::EEXIST));
    assert_eq!(ops.new_entry(Path::new("missing/dir"), |path| std::fs::create_dir(path)), Err(Errno::ENOENT));
    let failing = ops.new_entry(Path::new("other"), |_| Err(std::io::Error::from_raw_os_error(Errno::EIO.code())));
    assert_eq!(failing, Err(Errno::EIO));
    assert_eq!(ops.pending(), 0);
    std::fs::write(root.join("other"), b"made by hand").unwrap();
    assert_eq!(cut(ops, &root), 0);
    assert_eq!(read(&root, "taken").as_deref(), Some(&b"mine"[..]));
    assert_eq!(read(&root, "other").as_deref(), Some(&b"made by hand"[..]));
    clean_up(&root);
}

#[test]
fn a_clean_stop_keeps_everything() {
    let root = scratch("clean");
    std::fs::write(root.join("old"), b"old").unwrap();
    let mut ops = DirOps::new(root.clone());
    mkdir(&mut ops, "dir");
    create(&mut ops, &root, "dir/file", b"data");
    ops.remove(Path::new("old"), false).unwrap();
    ops.rename(Path::new("dir"), Path::new("renamed"), false).unwrap();
    ops.commit_all().unwrap();
    assert!(!sibling(&root, JOURNAL_SUFFIX).exists(), "the journal is gone");
    assert!(!sibling(&root, TRASH_SUFFIX).exists(), "the trash is gone");
    assert_eq!(cut(ops, &root), 0);
    assert_eq!(read(&root, "renamed/file").as_deref(), Some(&b"data"[..]));
    assert_eq!(read(&root, "old"), None);
    let recovered = recover(&root).unwrap();
    assert_eq!(recovered, None, "no journal: nothing to undo");
    assert!(sibling(&root, TRASH_SUFFIX).is_dir(), "start-up leaves an empty trash ready");
    clean_up(&root);
}

#[test]
fn past_the_bound_the_oldest_pending_operations_become_durable() {
    let root = scratch("bound");
    let mut ops = DirOps::with_bound(root.clone(), 3);
    for name in ["a", "b", "c", "d", "e"] {
        create(&mut ops, &root, name, name.as_bytes());
    }
    assert_eq!((ops.forced, ops.pending()), (2, 3));
    assert_eq!(cut(ops, &root), 3);
    assert_eq!(read(&root, "a").as_deref(), Some(&b"a"[..]), "made durable by the bound");
    assert_eq!(read(&root, "b").as_deref(), Some(&b"b"[..]));
    for name in ["c", "d", "e"] {
        assert_eq!(read(&root, name), None, "{name}");
    }

    // The journal of an endless stream of operations is rewritten with
    // only the kept ones, so it stays bounded too.
    let mut ops = DirOps::with_bound(root.clone(), 3);
    let count = 2 * REWRITE_SLACK_RECORDS;
    for index in 0..count {
        ops.new_entry(&PathBuf::from(format!("x{index}")), |path| File::create_new(path).map(drop)).unwrap();
        let lines = std::fs::read_to_string(sibling(&root, JOURNAL_SUFFIX)).unwrap().lines().count() as u64;
        assert!(lines <= 2 * 3 + REWRITE_SLACK_RECORDS + 2, "{lines} journal lines after {index} operations");
    }
    assert_eq!(ops.forced, count - 3);
    assert_eq!(cut(ops, &root), 3);
    assert!(root.join(format!("x{}", count - 4)).exists());
    assert!(!root.join(format!("x{}", count - 3)).exists());
    clean_up(&root);
}
