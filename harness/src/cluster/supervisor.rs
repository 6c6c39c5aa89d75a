//! The process supervisor: one dedicated long-lived thread forks every node
//! and reaps it.
//!
//! Why a thread of its own: `PR_SET_PDEATHSIG` fires when the *thread* that
//! forked the child exits, so forking from tokio's blocking pool (whose
//! threads die when idle) would kill nodes at random. This thread lives as
//! long as the cluster; when the harness dies in any way, the kernel kills
//! every child. Each child also leads its own process group, so a kill or a
//! pause reaches anything the node started.
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The line that opens each launch's output in a node's log.
pub(crate) const LAUNCH_MARKER: &str = "--- faultline supervisor: launching node";

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::oneshot;

use super::db::NodeLaunch;
use super::guard::Guard;
use super::{ClusterError, NodeState, UnexpectedExit};

/// How often the thread looks for exited children when idle.
const REAP_INTERVAL_MS: u64 = 20;
/// Bound on a SIGKILLed child to be reaped.
const KILL_WAIT_MS: u64 = 5_000;
/// Commands queued to the thread.
const COMMANDS_MAX: usize = 64;

/// The last exit of a node process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Exit {
    pub pid: u32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

#[derive(Default)]
struct Slot {
    child: Option<Child>,
    paused: bool,
    /// Exits while starting are startup failures, reported by `start`.
    starting: bool,
    /// Being removed from the cluster: an exit of its own is expected (a
    /// removed etcd member stops itself). Cleared at the next spawn.
    leaving: bool,
    /// A fault in force makes an exit of its own the right answer (its
    /// disk fails under it). Kept across spawns until cleared.
    failing: bool,
    last_exit: Option<Exit>,
}

#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    unexpected: Vec<UnexpectedExit>,
    /// For nodes on hosts: how a signal reaches the node's group there
    /// (the local child is only the `ssh` that started it).
    remote: Option<RemoteSignal>,
}

/// Sends a signal to a node's process group on its host.
pub(crate) type RemoteSignal = Arc<dyn Fn(usize, Signal) -> Result<(), String> + Send + Sync>;

/// What the supervisor thread owns besides the table.
struct Owned {
    death_signal: Signal,
    /// Told of every node group, so it can kill them if the harness dies.
    guard: Option<Guard>,
}

enum Request {
    Spawn { node: usize, launch: NodeLaunch, log_path: PathBuf, reply: oneshot::Sender<Result<u32, ClusterError>> },
    Kill { node: usize, signal: Signal, reply: oneshot::Sender<()> },
    Stop { reply: Option<oneshot::Sender<()>> },
}

pub(crate) struct Supervisor {
    commands: SyncSender<Request>,
    table: Arc<Mutex<Table>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // No code panics while holding the table, so poisoned data is intact.
    table.lock().unwrap_or_else(|p| p.into_inner())
}

impl Supervisor {
    /// A supervisor of `nodes` slots whose children get `death_signal`
    /// when the harness dies (SIGKILL for nodes; SIGTERM for helpers that
    /// must clean up, such as lazyfs daemons detaching their mounts).
    pub(crate) fn start(nodes: usize, death_signal: Signal, guard: Option<Guard>) -> Result<Self, ClusterError> {
        let table = Arc::new(Mutex::new(Table {
            slots: (0..nodes).map(|_| Slot::default()).collect(),
            unexpected: Vec::new(),
            remote: None,
        }));
        let (commands, inbox) = mpsc::sync_channel(COMMANDS_MAX);
        let thread_table = table.clone();
        let thread = std::thread::Builder::new()
            .name("faultline-supervisor".into())
            .spawn(move || run(thread_table, inbox, Owned { death_signal, guard }))
            .map_err(|source| ClusterError::Spawn { node: 0, program: "supervisor thread".into(), source })?;
        Ok(Supervisor { commands, table, thread: Mutex::new(Some(thread)) })
    }

    /// Launch `node`; returns its pid. Its exits count as startup failures
    /// until `started` is called.
    pub(crate) async fn spawn(&self, node: usize, launch: NodeLaunch, log_path: PathBuf) -> Result<u32, ClusterError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Spawn { node, launch, log_path, reply })?;
        answer.await.map_err(|_| ClusterError::SupervisorGone)?
    }

    /// SIGKILL the node's process group and reap it (bounded).
    pub(crate) async fn kill(&self, node: usize) -> Result<(), ClusterError> {
        self.signal_and_reap(node, Signal::SIGKILL).await
    }

    /// Send `signal` to the node's process group and reap it (bounded; a
    /// child still running after the bound stays in its slot).
    pub(crate) async fn signal_and_reap(&self, node: usize, signal: Signal) -> Result<(), ClusterError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Kill { node, signal, reply })?;
        answer.await.map_err(|_| ClusterError::SupervisorGone)
    }

    /// Nodes run on hosts: signals go through `remote`. Set before the
    /// first spawn.
    pub(crate) fn set_remote(&self, remote: RemoteSignal) {
        lock(&self.table).remote = Some(remote);
    }

    /// SIGSTOP or SIGCONT the node's process group. Sent under the table
    /// lock, so the pid cannot have been reaped and reused meanwhile (on a
    /// host, after it: the pid there is the node's own, in its pid file).
    pub(crate) fn pause(&self, node: usize, paused: bool) -> Result<(), ClusterError> {
        let mut table = lock(&self.table);
        let remote = table.remote.clone();
        let slot = &mut table.slots[node];
        let Some(child) = &slot.child else {
            return Err(ClusterError::WrongState { node, state: "killed", action: "pause or resume" });
        };
        let signal = if paused { Signal::SIGSTOP } else { Signal::SIGCONT };
        if remote.is_none() {
            killpg(pid_of(child), signal).map_err(|source| ClusterError::Signal { node, source })?;
        }
        slot.paused = paused;
        drop(table);
        match remote {
            Some(remote) => remote(node, signal).map_err(|message| ClusterError::Remote { node, message }),
            None => Ok(()),
        }
    }

    /// Whether the node is being removed (its own exit is then no crash).
    pub(crate) fn set_leaving(&self, node: usize, leaving: bool) {
        lock(&self.table).slots[node].leaving = leaving;
    }

    /// Whether a fault in force (a failing disk) makes the node's own exit
    /// expected.
    pub(crate) fn set_failing(&self, node: usize, failing: bool) {
        lock(&self.table).slots[node].failing = failing;
    }

    pub(crate) fn is_failing(&self, node: usize) -> bool {
        lock(&self.table).slots[node].failing
    }

    pub(crate) fn started(&self, node: usize) {
        lock(&self.table).slots[node].starting = false;
    }

    pub(crate) fn state(&self, node: usize) -> NodeState {
        let table = lock(&self.table);
        let slot = &table.slots[node];
        match (&slot.child, slot.paused) {
            (None, _) => NodeState::Killed,
            (Some(_), true) => NodeState::Paused,
            (Some(_), false) => NodeState::Running,
        }
    }

    pub(crate) fn pid(&self, node: usize) -> Option<u32> {
        lock(&self.table).slots[node].child.as_ref().map(Child::id)
    }

    pub(crate) fn last_exit(&self, node: usize) -> Option<Exit> {
        lock(&self.table).slots[node].last_exit
    }

    pub(crate) fn unexpected_exits(&self) -> Vec<UnexpectedExit> {
        lock(&self.table).unexpected.clone()
    }

    /// Kill and reap every node, then end the thread. Idempotent.
    pub(crate) async fn stop(&self) {
        let (reply, answer) = oneshot::channel();
        if self.send(Request::Stop { reply: Some(reply) }).is_ok() {
            let _ = answer.await;
        }
        self.join();
    }

    /// `stop` for `Drop` and signal paths: blocks until the thread is done.
    pub(crate) fn stop_blocking(&self) {
        let _ = self.send(Request::Stop { reply: None });
        self.join();
    }

    fn join(&self) {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    fn send(&self, command: Request) -> Result<(), ClusterError> {
        self.commands.send(command).map_err(|_| ClusterError::SupervisorGone)
    }
}

fn pid_of(child: &Child) -> Pid {
    // Pids fit in i32 on Linux (pid_max ≤ 2^22).
    Pid::from_raw(child.id() as i32)
}

/// The thread's loop: serve commands, reap exited children between them.
fn run(table: Arc<Mutex<Table>>, inbox: mpsc::Receiver<Request>, mut owned: Owned) {
    // Runs for the life of the cluster; ends on Stop or when every handle
    // is gone, after killing and reaping every child.
    loop {
        match inbox.recv_timeout(Duration::from_millis(REAP_INTERVAL_MS)) {
            Ok(Request::Spawn { node, launch, log_path, reply }) => {
                let spawned = spawn(&table, node, &launch, &log_path, owned.death_signal);
                if let (Ok(pid), Some(guard)) = (&spawned, &mut owned.guard) {
                    guard.watch(*pid);
                }
                let _ = reply.send(spawned);
            }
            Ok(Request::Kill { node, signal, reply }) => {
                let reaped = kill(&mut lock(&table), node, signal);
                forget(&mut owned, reaped);
                let _ = reply.send(());
            }
            Ok(Request::Stop { reply }) => {
                let reaped = kill_all(&table);
                reaped.into_iter().for_each(|pid| forget(&mut owned, Some(pid)));
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let reaped = kill_all(&table);
                reaped.into_iter().for_each(|pid| forget(&mut owned, Some(pid)));
                return;
            }
        }
        let reaped = reap(&mut lock(&table));
        reaped.into_iter().for_each(|pid| forget(&mut owned, Some(pid)));
    }
}

fn spawn(
    table: &Mutex<Table>,
    node: usize,
    launch: &NodeLaunch,
    log_path: &PathBuf,
    death_signal: Signal,
) -> Result<u32, ClusterError> {
    let mut table = lock(table);
    if table.slots[node].child.is_some() {
        return Err(ClusterError::WrongState { node, state: "running", action: "start" });
    }
    let spawn_error = |source| ClusterError::Spawn { node, program: launch.program.clone(), source };
    let files_error = |source| ClusterError::Files { path: log_path.clone(), source };
    let mut log = OpenOptions::new().create(true).append(true).open(log_path).map_err(files_error)?;
    let _ = writeln!(log, "{LAUNCH_MARKER} {node}: {:?} {:?}", launch.program, launch.args);
    let stderr = log.try_clone().map_err(files_error)?;
    let mut note = log.try_clone().map_err(files_error)?;
    let mut command = Command::new(&launch.program);
    command
        .args(&launch.args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        // On a host, the `ssh` gets a pipe the slot holds (in `Child`) and
        // never writes: the remote side sees it end when the harness dies.
        .stdin(if table.remote.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(log)
        .stderr(stderr)
        .process_group(0);
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (prctl, getppid), allocating nothing.
    unsafe {
        command.pre_exec(move || die_with_parent(parent, death_signal));
    }
    let child = command.spawn().map_err(spawn_error)?;
    let pid = child.id();
    let _ = writeln!(note, "--- faultline supervisor: node {node} is pid {pid}");
    let slot = &mut table.slots[node];
    *slot = Slot { child: Some(child), paused: false, starting: true, leaving: false, failing: slot.failing, last_exit: slot.last_exit };
    Ok(pid)
}

/// In the child: ask for `signal` when the forking thread dies, then make
/// sure the parent did not die before the request took effect.
fn die_with_parent(parent: u32, signal: Signal) -> std::io::Result<()> {
    nix::sys::prctl::set_pdeathsig(signal)
        .map_err(|errno| std::io::Error::from_raw_os_error(errno as i32))?;
    if nix::unistd::getppid().as_raw() as u32 != parent {
        return Err(std::io::Error::from_raw_os_error(nix::errno::Errno::ESRCH as i32));
    }
    Ok(())
}

/// A reaped group is dead (its members were SIGKILLed with it): the guard
/// need not watch it any more.
fn forget(owned: &mut Owned, reaped: Option<u32>) {
    if let (Some(pid), Some(guard)) = (reaped, &mut owned.guard) {
        guard.forget(pid);
    }
}

/// Signal the node's group (SIGKILL, unless asked otherwise) and wait for
/// the child (bounded); returns the pid (= group) when it was reaped.
fn kill(table: &mut Table, node: usize, signal: Signal) -> Option<u32> {
    let remote = table.remote.clone();
    let slot = &mut table.slots[node];
    let mut child = slot.child.take()?;
    match &remote {
        // The local `ssh` ends when the node does, with its exit status.
        Some(remote) => {
            if let Err(message) = remote(node, signal) {
                crate::messages::warning(format_args!("node {node}: {message}"));
            }
        }
        None => {
            let _ = killpg(pid_of(&child), signal);
        }
    }
    let deadline = Instant::now() + Duration::from_millis(KILL_WAIT_MS);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            // Unreapable within the bound (stuck in the kernel): keep it so a
            // later reap or the final stop gets it.
            Ok(None) => {
                slot.child = Some(child);
                return None;
            }
            Err(_) => break None,
        }
    };
    // What the leader left running in its group goes with it.
    let _ = killpg(pid_of(&child), Signal::SIGKILL);
    slot.paused = false;
    slot.last_exit = status.map(|s| exit_of(child.id(), s, remote.is_some()));
    Some(child.id())
}

/// Kill every node; returns the groups reaped.
fn kill_all(table: &Mutex<Table>) -> Vec<u32> {
    let mut table = lock(table);
    (0..table.slots.len()).filter_map(|node| kill(&mut table, node, Signal::SIGKILL)).collect()
}

/// Record children that exited on their own; returns the groups reaped.
fn reap(table: &mut Table) -> Vec<u32> {
    let mut reaped = Vec::new();
    for node in 0..table.slots.len() {
        let slot = &mut table.slots[node];
        let Some(child) = &mut slot.child else { continue };
        let Ok(Some(status)) = child.try_wait() else { continue };
        let exit = exit_of(child.id(), status, table.remote.is_some());
        // Whatever the node started in its group dies with it. The group id
        // is not reused while any member lives, so this reaches only them.
        let _ = killpg(pid_of(child), Signal::SIGKILL);
        if let Some(remote) = &table.remote {
            // The `ssh` may have ended without the node (a lost connection).
            let _ = remote(node, Signal::SIGKILL);
        }
        let slot = &mut table.slots[node];
        let expected = slot.starting || slot.leaving || slot.failing;
        slot.child = None;
        slot.paused = false;
        slot.last_exit = Some(exit);
        reaped.push(exit.pid);
        if !expected {
            table.unexpected.push(UnexpectedExit { node, pid: exit.pid, code: exit.code, signal: exit.signal });
        }
    }
    reaped
}

/// On a host, the node's exit comes back as the status of the `ssh` that
/// started it, where a shell says "killed by signal n" as 128 + n.
fn exit_of(pid: u32, status: ExitStatus, remote: bool) -> Exit {
    match status.code() {
        Some(code @ 129..=192) if remote => Exit { pid, code: None, signal: Some(code - 128) },
        code => Exit { pid, code, signal: status.signal() },
    }
}
