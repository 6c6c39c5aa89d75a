//! Clocks the harness can move: with `ClusterConfig::clock`, every node
//! starts with libfaketime preloaded and reading its offset and rate from
//! a file of its own (`node-<i>/faketime.rc`) on every wall-clock read, so
//! the clock nemesis moves a running node's clock by writing that file.
//!
//! Only programs that read the clock through libc's dynamic symbols see
//! it: not statically linked ones, nor Go programs (etcd), which read it
//! through the vDSO. `verify_clocks` proves, once per node, that a faked
//! offset is visible to the node.
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Cluster, ClusterError, NodeLaunch};

/// Where Debian, Ubuntu and a source install put libfaketime.
const LIBRARY_PATHS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];
/// The offset `verify_clocks` fakes, and how far off the node's answer may be.
const PROBE_OFFSET_S: i64 = 3_600;
const PROBE_TOLERANCE_MS: i64 = 60_000;
/// The same with the monotonic clock faked too: putting the probe back
/// moves that clock back by the offset, and every timer the node set during
/// the probe waits that much longer. An hour left faultline-node with no
/// leader for the whole test (liveness invalid on the correct node).
const PROBE_MONOTONIC_OFFSET_S: i64 = 3;
const PROBE_MONOTONIC_TOLERANCE_MS: i64 = 1_000;
/// How long the probe waits for a node to show the offset, and how often it asks.
const PROBE_TIMEOUT_MS: u64 = 3_000;
const PROBE_POLL_MS: u64 = 100;

/// libfaketime's shared object on this machine.
pub fn find_libfaketime() -> Result<PathBuf, String> {
    LIBRARY_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .ok_or_else(|| format!("clock faults need libfaketime (apt install libfaketime; looked in {})", LIBRARY_PATHS.join(", ")))
}

/// One line of libfaketime's timestamp file: an offset in seconds and,
/// unless 1, a rate (`+2.500 x0.5`).
pub fn faketime_line(offset_ms: i64, rate: f64) -> String {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let magnitude = offset_ms.unsigned_abs();
    let offset = format!("{sign}{}.{:03}", magnitude / 1_000, magnitude % 1_000);
    match rate == 1.0 {
        true => format!("{offset}\n"),
        false => format!("{offset} x{rate}\n"),
    }
}

impl Cluster {
    fn faketime_file(&self, node: usize) -> PathBuf {
        self.inner.config.dir.join(format!("node-{node}")).join("faketime.rc")
    }

    /// The environment that makes a launched node read its clock from its file.
    pub(super) fn preload_clock(&self, node: usize, launch: &mut NodeLaunch) -> Result<(), ClusterError> {
        let Some(clock) = &self.inner.config.clock else { return Ok(()) };
        let file = self.faketime_file(node);
        if !file.exists() {
            write_line(&file, &faketime_line(0, 1.0))?;
        }
        let preload = match launch.env.iter().find(|(key, _)| key == "LD_PRELOAD") {
            Some((_, other)) => format!("{}:{other}", clock.library.display()),
            None => clock.library.display().to_string(),
        };
        launch.env.retain(|(key, _)| key != "LD_PRELOAD");
        launch.env.push(("LD_PRELOAD".into(), preload));
        launch.env.push(("FAKETIME_TIMESTAMP_FILE".into(), file.display().to_string()));
        // Read the file at every wall-clock read, so a change applies at once
        // (measured: 3.3 µs per wall-clock read; monotonic reads untouched).
        launch.env.push(("FAKETIME_NO_CACHE".into(), "1".into()));
        if !clock.fake_monotonic {
            launch.env.push(("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()));
        }
        Ok(())
    }

    /// Move the node's clock: `offset_ms` from the real time, running at
    /// `rate` (libfaketime counts a rate from the process's start).
    pub fn set_clock(&self, node: usize, offset_ms: i64, rate: f64) -> Result<(), ClusterError> {
        self.check(node)?;
        if self.inner.config.clock.is_none() {
            return Err(ClusterError::Config("clock faults need libfaketime preloaded (ClusterConfig::clock)".into()));
        }
        write_line(&self.faketime_file(node), &faketime_line(offset_ms, rate))
    }

    /// Fake an hour ahead on each node, ask the node its clock until it
    /// shows it (bounded), and put it back: an error names the first node
    /// that did not see it.
    pub async fn verify_clocks(&self) -> Result<(), ClusterError> {
        let monotonic = self.inner.config.clock.as_ref().is_some_and(|clock| clock.fake_monotonic);
        let (offset_s, tolerance_ms) =
            if monotonic { (PROBE_MONOTONIC_OFFSET_S, PROBE_MONOTONIC_TOLERANCE_MS) } else { (PROBE_OFFSET_S, PROBE_TOLERANCE_MS) };
        for node in self.members() {
            self.set_clock(node, offset_s * 1_000, 1.0)?;
            let seen = self.clock_seen(node, offset_s * 1_000, tolerance_ms).await;
            self.set_clock(node, 0, 1.0)?;
            match seen {
                Ok(()) => {}
                Err(Some(off_ms)) => {
                    return Err(ClusterError::Config(format!(
                        "clock faults do not reach node {node}: with a faked offset of +{offset_s} s it reads {:.1} s from the real time (a statically linked or Go program reads the clock without libc)",
                        off_ms as f64 / 1_000.0
                    )))
                }
                Err(None) => return Err(ClusterError::Config(format!("node {node} did not report its clock (Db::clock_ms)"))),
            }
        }
        Ok(())
    }

    /// Polls the node's clock until it reads `offset_ms` from the real time,
    /// within `tolerance_ms`; the last offset it read otherwise (None: it
    /// never answered).
    async fn clock_seen(&self, node: usize, offset_ms: i64, tolerance_ms: i64) -> Result<(), Option<i64>> {
        let deadline = std::time::Instant::now() + Duration::from_millis(PROBE_TIMEOUT_MS);
        let mut last = None;
        // Bounded by the deadline: a probe that reports its clock late (a
        // file the node rewrites) still counts.
        while std::time::Instant::now() < deadline {
            if let Some(seen) = self.inner.db.clock_ms(node, &self.node_env(node)).await {
                let off_ms = seen as i64 - now_ms();
                if (off_ms - offset_ms).abs() <= tolerance_ms {
                    return Ok(());
                }
                last = Some(off_ms);
            }
            tokio::time::sleep(Duration::from_millis(PROBE_POLL_MS)).await;
        }
        Err(last)
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as i64
}

/// Write through a temporary file and a rename, so a node never reads half a line.
fn write_line(path: &Path, line: &str) -> Result<(), ClusterError> {
    let temporary = path.with_extension("rc.new");
    std::fs::write(&temporary, line)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|source| ClusterError::Files { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_offset_and_rate_as_libfaketime_reads_them() {
        assert_eq!(faketime_line(0, 1.0), "+0.000\n");
        assert_eq!(faketime_line(-2_500, 1.0), "-2.500\n");
        assert_eq!(faketime_line(10_000, 0.5), "+10.000 x0.5\n");
        assert_eq!(faketime_line(-7, 2.0), "-0.007 x2\n");
    }
}
