//! One `faultline lazyfs` daemon on a real mount, for the tests of lazyfs's
//! faults and of its directory entries.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::process_support::{wait_child, wait_for};

/// A daemon over `<dir>/disk` at `<dir>/mnt`, reading `<dir>/control` and
/// logging to `<dir>/lazyfs.log`. Dropping it kills the daemon, detaches
/// the mount and removes the directory (the journal and trash beside
/// `disk` too), even when a test fails (then the daemon's log is printed
/// first).
pub struct Daemon {
    pub dir: PathBuf,
    pub child: Option<Child>,
}

impl Daemon {
    /// `suite` and `name` make the directory's name unique among tests.
    pub fn start(suite: &str, name: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("faultline-lazyfs-{suite}-{name}-{}", std::process::id()));
        let _ = faultline_lazyfs::detach(&dir.join("mnt"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut daemon = Daemon { dir, child: None };
        daemon.mount();
        daemon
    }

    pub fn mnt(&self) -> PathBuf {
        self.dir.join("mnt")
    }

    /// A file of the backing directory, as the disk holds it.
    pub fn disk(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join("disk").join(name)).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("lazyfs.log")).unwrap_or_default()
    }

    pub fn mount(&mut self) {
        let log = OpenOptions::new().create(true).append(true).open(self.dir.join("lazyfs.log")).unwrap();
        let path = |name: &str| self.dir.join(name).display().to_string();
        let child = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(["lazyfs", &path("mnt"), "--backing", &path("disk"), "--control", &path("control")])
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for("the mount", Duration::from_secs(10), || faultline_lazyfs::is_mounted(&self.mnt()));
    }

    pub fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("a running daemon");
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    }

    /// Write the control file, SIGUSR1, and wait for the daemon's line
    /// about it (applied or rejected), which is returned.
    pub fn set(&self, line: &str) -> String {
        let answers = |log: &str| -> Vec<String> {
            log.lines().filter(|l| l.contains("faults applied") || l.contains("rejected")).map(str::to_string).collect()
        };
        let before = answers(&self.log()).len();
        std::fs::write(self.dir.join("control"), line).unwrap();
        self.signal(Signal::SIGUSR1);
        wait_for("the daemon to read its control file", Duration::from_secs(10), || answers(&self.log()).len() > before);
        answers(&self.log()).pop().unwrap()
    }

    /// The plain power cut: SIGKILL, then detach the stale mount.
    pub fn cut(&mut self) {
        let mut child = self.child.take().expect("a running daemon");
        child.kill().unwrap();
        child.wait().unwrap();
        faultline_lazyfs::detach(&self.mnt()).unwrap();
    }

    /// The power cut, then a fresh daemon over what was synced.
    pub fn cut_and_mount(&mut self) {
        self.cut();
        self.mount();
    }

    /// SIGTERM, the clean stop, then mount again.
    pub fn stop_and_mount(&mut self) {
        let mut child = self.child.take().expect("a running daemon");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        assert!(wait_child(&mut child, "the daemon after SIGTERM", Duration::from_secs(10)).success());
        assert!(!faultline_lazyfs::is_mounted(&self.mnt()));
        self.mount();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = faultline_lazyfs::detach(&self.mnt());
        if std::thread::panicking() {
            eprintln!("lazyfs log of {}:\n{}", self.dir.display(), self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
