//! Processes on a host: a node, or the lazyfs daemon under its data dir.
//! Each is started by an `ssh` that the local supervisor owns, in a session
//! of its own on the host whose group id is in a pid file there, and is
//! signalled by that group.
use nix::sys::signal::Signal;

use super::ssh::quote;
use super::{needs_upload, HostError, Hosts};
use crate::cluster::{ClusterError, NodeLaunch};

/// What a process on a host is, naming its pid file and log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Node,
    /// The node's lazyfs daemon, for power loss.
    Lazyfs,
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Lazyfs => "lazyfs",
        }
    }
}

impl Hosts {
    /// The local command that runs `launch` as `role` of node `node` on its
    /// host: uploads the program (once a run) when it is not a system one,
    /// writes the files the launch asks for, and returns an `ssh` whose
    /// exit is the process's. `hangup` is what the host does to the group
    /// `$child` when the harness or its connection dies.
    pub(crate) async fn remote_launch(&self, role: Role, node: usize, launch: &NodeLaunch, hangup: &str) -> Result<NodeLaunch, ClusterError> {
        let host = &self.hosts[node];
        let data_dir = self.data_dir(node);
        host.ssh.run(&format!("mkdir -p {}/bin {}", quote(&host.run_dir), quote(&data_dir.display().to_string()))).await?;
        let program = self.program_on_host(node, launch).await?;
        for file in &launch.files {
            host.ssh.write(&file.path.display().to_string(), &file.text, file.keep_existing).await?;
        }
        let mut command: Vec<String> = Vec::new();
        if !launch.env.is_empty() {
            command.push("env".into());
            command.extend(launch.env.iter().map(|(key, value)| quote(&format!("{key}={value}"))));
        }
        command.push(quote(&program));
        command.extend(launch.args.iter().map(|arg| quote(arg)));
        // setsid (not a group leader: no fork) makes the shell the leader
        // of a new session and group, whose id goes in the pid file; the
        // exec keeps that pid for the process. The watcher reads the SSH
        // channel's stdin, which the harness holds open and never writes:
        // it ends when the harness or its connection dies, and then acts
        // on the group, so nothing outlives the harness for long.
        let script = format!(
            "exec 3<&0\ncd {run} || exit 126\n\
             setsid sh -c 'echo $$ > \"$0\"; exec \"$@\"' {pid} {command} >> {log} 2>&1 < /dev/null 3<&- &\n\
             child=$!\n{{ cat <&3 > /dev/null; {hangup}; }} > /dev/null 2>&1 &\nwatcher=$!\n\
             wait $child\ncode=$?\nkill $watcher 2>/dev/null\nrm -f {pid}\nexit $code\n",
            run = quote(&host.run_dir),
            pid = quote(&host.pid_file(role, node)),
            command = command.join(" "),
            log = quote(&self.remote_log(role, node)),
        );
        Ok(host.ssh.launch(&script))
    }

    /// Where `launch`'s program is on node `node`'s host: a system one
    /// where it is here, anything else copied into this run's `bin/`.
    async fn program_on_host(&self, node: usize, launch: &NodeLaunch) -> Result<String, HostError> {
        if !needs_upload(&launch.program) {
            return Ok(launch.program.display().to_string());
        }
        let host = &self.hosts[node];
        let name = launch.program.file_name().map_or("program".into(), |n| n.to_string_lossy().into_owned());
        let remote = format!("{}/bin/{name}", host.run_dir);
        let key = (node, launch.program.clone());
        let done = self.uploaded.lock().unwrap_or_else(|p| p.into_inner()).contains(&key);
        if !done {
            host.ssh.upload(&launch.program, &remote).await?;
            self.uploaded.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
        }
        Ok(remote)
    }

    /// Send `signal` to the group of `role` of node `node` on its host
    /// (blocking, bounded): what kill, pause and resume mean on a host.
    pub(crate) fn signal(&self, role: Role, node: usize, signal: Signal) -> Result<(), HostError> {
        let host = &self.hosts[node];
        let name = signal.as_str().trim_start_matches("SIG");
        let script = format!(
            "f={}; [ -f \"$f\" ] || exit 0; pg=$(cat \"$f\"); [ -n \"$pg\" ] && kill -s {name} -- -\"$pg\" 2>/dev/null; exit 0",
            quote(&host.pid_file(role, node))
        );
        host.ssh.run_blocking(&script).map(|_| ())
    }
}
