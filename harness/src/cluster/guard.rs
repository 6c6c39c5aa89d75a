//! The guard: a small process (`faultline guard`) that kills every node's
//! process group when the harness dies, however it dies.
//!
//! `PR_SET_PDEATHSIG` reaches only a node's direct child; what that child
//! started (a sentinel beside its server, anything a generic `start`
//! script runs in the background) stays alive when the harness is killed
//! with SIGKILL. The guard closes that gap: the harness tells it, over a
//! pipe, each process group it starts and each it has reaped; when the
//! pipe ends (the harness's last copy of it closes, which the kernel does
//! for a dead process) the guard SIGKILLs every group still listed and
//! exits. It runs in a process group of its own, so a Ctrl-C at the
//! terminal does not take it down before the harness has cleaned up.
use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The harness's end of the pipe to a running guard.
pub(crate) struct Guard {
    child: Child,
    /// None once dropped: closing it is what lets the guard exit.
    pipe: Option<ChildStdin>,
}

impl Guard {
    /// Start `program guard`; None when it cannot start (the harness then
    /// relies on PDEATHSIG alone).
    pub(crate) fn start(program: &Path) -> Option<Guard> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(program)
            .arg("guard")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .ok()?;
        let pipe = child.stdin.take();
        Some(Guard { child, pipe })
    }

    /// A process group the guard must kill if the harness dies.
    pub(crate) fn watch(&mut self, group: u32) {
        if let Some(pipe) = &mut self.pipe {
            let _ = writeln!(pipe, "+{group}");
        }
    }

    /// A process group the harness killed and reaped itself.
    pub(crate) fn forget(&mut self, group: u32) {
        if let Some(pipe) = &mut self.pipe {
            let _ = writeln!(pipe, "-{group}");
        }
    }
}

impl Drop for Guard {
    /// The harness is done with its nodes: closing the pipe lets the guard
    /// exit (after killing whatever is still listed), and it is reaped.
    fn drop(&mut self) {
        drop(self.pipe.take());
        let _ = self.child.wait();
    }
}

/// The guard process: read `+group`/`-group` lines until the pipe ends,
/// then SIGKILL every group still listed. Returns how many it killed.
pub fn serve(input: impl BufRead) -> usize {
    let mut groups = BTreeSet::new();
    // Ends when the harness is gone (EOF) or the pipe breaks.
    for line in input.lines() {
        let Ok(line) = line else { break };
        let (add, number) = match (line.strip_prefix('+'), line.strip_prefix('-')) {
            (Some(number), _) => (true, number),
            (None, Some(number)) => (false, number),
            (None, None) => continue,
        };
        let Ok(group) = number.trim().parse::<i32>() else { continue };
        if group <= 1 {
            continue; // Never a node's group; killpg(1) would hit init's.
        }
        if add {
            groups.insert(group);
        } else {
            groups.remove(&group);
        }
    }
    groups.iter().filter(|group| killpg(Pid::from_raw(**group), Signal::SIGKILL).is_ok()).count()
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use super::*;

    fn sleeper() -> Child {
        Command::new("sleep").arg("100").process_group(0).spawn().unwrap()
    }

    #[test]
    fn at_the_end_of_its_input_the_guard_kills_the_groups_still_listed() {
        let mut watched = sleeper();
        let mut forgotten = sleeper();
        let input = format!("+{}\n+{}\n-{}\n+1\n+x\nnoise\n", watched.id(), forgotten.id(), forgotten.id());
        assert_eq!(serve(input.as_bytes()), 1, "only the group still listed is killed");
        let status = watched.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
        assert!(forgotten.try_wait().unwrap().is_none(), "a forgotten group is left alone");
        forgotten.kill().unwrap();
        forgotten.wait().unwrap();
    }
}
