//! One SSH connection to a host, through the system `ssh` binary: a
//! ControlMaster the harness starts (and the supervisor kills with it), and
//! every command multiplexed over it, so a command costs a round trip, not
//! a handshake.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::HostError;
use crate::cluster::NodeLaunch;

/// Bound on the master connection coming up (an sshd just started may
/// refuse the first tries).
pub(crate) const CONNECT_TIMEOUT_MS: u64 = 15_000;
/// Pause between checks that the master is up.
pub(crate) const CONNECT_POLL_MS: u64 = 50;
/// Bound on one command over the connection (a fault's rules, a signal,
/// a log fetch); a longer one is a harness error, not a hang.
pub(crate) const COMMAND_TIMEOUT_MS: u64 = 20_000;

/// How to reach one host.
#[derive(Clone, Debug)]
pub(crate) struct Ssh {
    /// `user@address`, or the address alone.
    target: String,
    /// Options of the master connection (port, key, known hosts).
    options: Vec<String>,
    control_path: PathBuf,
}

impl Ssh {
    pub(crate) fn new(target: String, options: Vec<String>, control_path: PathBuf) -> Ssh {
        Ssh { target, options, control_path }
    }

    /// The master: `ssh -M -N`, run in the foreground by the supervisor
    /// (never ControlPersist, which would outlive the harness).
    pub(crate) fn master_launch(&self) -> NodeLaunch {
        let mut args = vec!["-M".to_string(), "-N".to_string(), "-S".to_string(), self.control_path.display().to_string()];
        args.extend(["-o", "ControlPersist=no", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=5", "-o", "ConnectTimeout=10"].map(String::from));
        args.extend(self.options.iter().cloned());
        args.push(self.target.clone());
        NodeLaunch { program: PathBuf::from("ssh"), args, env: Vec::new(), files: Vec::new() }
    }

    /// True when the master is up (`ssh -O check`).
    pub(crate) async fn connected(&self) -> bool {
        let status = tokio::process::Command::new("ssh")
            .args(["-S", &self.control_path.display().to_string(), "-O", "check", &self.target])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status()
            .await;
        status.is_ok_and(|status| status.success())
    }

    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// A command line that runs `script` (a `sh` script) on the host over
    /// the master connection.
    pub(crate) fn launch(&self, script: &str) -> NodeLaunch {
        NodeLaunch { program: PathBuf::from("ssh"), args: self.args(script), env: Vec::new(), files: Vec::new() }
    }

    fn args(&self, script: &str) -> Vec<String> {
        vec![
            "-S".to_string(),
            self.control_path.display().to_string(),
            "-o".to_string(),
            "ControlMaster=no".to_string(),
            "-o".to_string(),
            "BatchMode=yes".to_string(),
            self.target.clone(),
            "--".to_string(),
            script.to_string(),
        ]
    }

    /// Run `script` on the host (bounded); its stdout on success, its
    /// stderr in the error otherwise.
    pub(crate) async fn run(&self, script: &str) -> Result<String, HostError> {
        self.run_with_input(script, None).await
    }

    /// `run`, for code that cannot await (a signal sent under a lock).
    pub(crate) fn run_blocking(&self, script: &str) -> Result<String, HostError> {
        let mut child = std::process::Command::new("ssh")
            .args(self.args(script))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| HostError::new(&self.target, format!("cannot run ssh: {error}")))?;
        let deadline = Instant::now() + Duration::from_millis(COMMAND_TIMEOUT_MS);
        // Bounded by the deadline.
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(HostError::new(&self.target, format!("`{}` took over {COMMAND_TIMEOUT_MS} ms", first_line(script))));
                }
            }
        }
        let output = child.wait_with_output().map_err(|error| HostError::new(&self.target, error.to_string()))?;
        self.answer(script, output)
    }

    /// Copy a local file to `remote` on the host (written to a temporary
    /// name first, so a reader never sees half of it), executable.
    pub(crate) async fn upload(&self, local: &Path, remote: &str) -> Result<(), HostError> {
        let bytes = tokio::fs::read(local)
            .await
            .map_err(|error| HostError::new(&self.target, format!("cannot read {}: {error}", local.display())))?;
        let script = format!("cat > {0}.part && chmod 755 {0}.part && mv -f {0}.part {0}", quote(remote));
        self.run_with_input(&script, Some(bytes)).await.map(|_| ())
    }

    /// Write `text` to `remote` on the host.
    pub(crate) async fn write(&self, remote: &str, text: &str, only_if_missing: bool) -> Result<(), HostError> {
        let write = format!("cat > {0}.part && mv -f {0}.part {0}", quote(remote));
        let script = match only_if_missing {
            true => format!("if [ -e {} ]; then cat > /dev/null; else {write}; fi", quote(remote)),
            false => write,
        };
        self.run_with_input(&script, Some(text.as_bytes().to_vec())).await.map(|_| ())
    }

    async fn run_with_input(&self, script: &str, input: Option<Vec<u8>>) -> Result<String, HostError> {
        let mut child = tokio::process::Command::new("ssh")
            .args(self.args(script))
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| HostError::new(&self.target, format!("cannot run ssh: {error}")))?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(&bytes).await.map_err(|error| HostError::new(&self.target, format!("upload: {error}")))?;
        }
        let bound = Duration::from_millis(COMMAND_TIMEOUT_MS);
        let output = match tokio::time::timeout(bound, child.wait_with_output()).await {
            Ok(output) => output.map_err(|error| HostError::new(&self.target, error.to_string()))?,
            Err(_) => {
                return Err(HostError::new(&self.target, format!("`{}` took over {COMMAND_TIMEOUT_MS} ms", first_line(script))))
            }
        };
        self.answer(script, output)
    }

    fn answer(&self, script: &str, output: std::process::Output) -> Result<String, HostError> {
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr.lines().rfind(|line| !line.trim().is_empty()).unwrap_or("no message").trim().to_string();
        Err(HostError::new(
            &self.target,
            format!("`{}` failed ({}): {reason}", first_line(script), output.status.code().map_or("signal".into(), |c| format!("exit {c}"))),
        ))
    }
}

fn first_line(script: &str) -> &str {
    let line = script.lines().next().unwrap_or("");
    match line.char_indices().nth(60) {
        Some((cut, _)) => &line[..cut],
        None => line,
    }
}

/// `text` as one `sh` word.
pub(crate) fn quote(text: &str) -> String {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-=:,@+".contains(&b)) {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quote_leaves_plain_words_and_wraps_the_rest() {
        assert_eq!(quote("/tmp/a-b_c.d"), "/tmp/a-b_c.d");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$HOME"), "'$HOME'");
    }
}
