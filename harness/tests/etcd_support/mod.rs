//! Shared by the tests that run a real etcd: finding it (or skipping), and
//! a fresh scratch directory per test.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::path::PathBuf;

use faultline::systems::etcd::EtcdDb;

/// The etcd binary, or None after printing a `SKIP` line for `test`
/// (a panic instead when FAULTLINE_REQUIRE_ADAPTERS=1, as CI sets).
pub fn etcd_or_skip(test: &str) -> Option<PathBuf> {
    match EtcdDb::find_binary() {
        Ok(path) => Some(path),
        Err(error) if std::env::var("FAULTLINE_REQUIRE_ADAPTERS").as_deref() == Ok("1") => {
            panic!("FAULTLINE_REQUIRE_ADAPTERS=1 but {error}")
        }
        Err(error) => {
            eprintln!("SKIP: {test}: {error}");
            None
        }
    }
}

/// An empty directory under the system's temp dir, unique to this process.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
