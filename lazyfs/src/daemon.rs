//! The daemon's signal thread: every signal the daemon answers is blocked
//! in all threads and waited for here, one at a time.
//!
//! - SIGTERM, SIGINT: a clean stop (write every unsynced byte through,
//!   detach the mount);
//! - SIGUSR1: read the control file again and apply its faults;
//! - SIGUSR2: the torn power cut (see [`State::tear`]), then exit at once
//!   with [`EXIT_TORN_CUT`], holding the state's lock so no request
//!   writes anything else through, and without unmounting.
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nix::sys::signal::{SigSet, Signal};

use crate::faults::{read_control, ControlError, Faults};
use crate::state::{lock, State, Torn};
use crate::undo::Recovered;

/// The exit code of a daemon after a torn power cut (SIGUSR2). A clean
/// stop exits through [`crate::serve`] returning instead.
pub const EXIT_TORN_CUT: u8 = 4;

/// Something the daemon did, for its log (one line each when displayed).
#[derive(Debug)]
pub enum Event {
    /// The control file was read and its faults are in force.
    FaultsApplied { control: PathBuf, faults: Faults },
    /// The control file was bad; the faults in force stay.
    ControlRejected { control: PathBuf, error: ControlError, kept: Faults },
    /// SIGUSR1 came to a daemon that has no control file.
    NoControl,
    /// A torn power cut, just before the exit (None: nothing was dirty).
    TornCut(Option<Torn>),
    /// A torn power cut whose write-through failed; the daemon exits all
    /// the same.
    TornCutFailed { torn: Torn, error: std::io::Error },
    /// At start-up, before mounting: the directory journal a power cut
    /// left was applied (the changes it lists that no directory fsync made
    /// durable are undone).
    DirectoriesRecovered(Recovered),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::FaultsApplied { control, faults } => write!(f, "faults applied from {}: {faults}", control.display()),
            Event::ControlRejected { control, error, kept } => {
                write!(f, "control file {} rejected, faults unchanged ({kept}): {error}", control.display())
            }
            Event::NoControl => write!(f, "SIGUSR1 ignored: this daemon has no control file"),
            Event::TornCut(None) => write!(f, "torn power cut: nothing unsynced; exiting with code {EXIT_TORN_CUT}"),
            Event::TornCut(Some(torn)) => {
                write!(f, "torn power cut: wrote {}; exiting with code {EXIT_TORN_CUT}", Shown(torn))
            }
            Event::DirectoriesRecovered(Recovered { journal, operations, undone }) => write!(
                f,
                "directory journal {}: undid {undone} of {operations} directory operations (not made durable by an fsync of their directory before the power cut)",
                journal.display()
            ),
            Event::TornCutFailed { torn, error } => {
                write!(f, "torn power cut: writing {} failed: {error}; exiting with code {EXIT_TORN_CUT}", Shown(torn))
            }
        }
    }
}

/// "N bytes of FILE at offset O".
struct Shown<'a>(&'a Torn);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.0.path.as_ref().map_or_else(|| "(a removed file)".to_string(), |p| p.display().to_string());
        write!(f, "{} bytes of {path} at offset {}", self.0.bytes, self.0.offset)
    }
}

/// The signals the daemon answers; block them in every thread before any
/// other thread starts, so only [`Watcher::run`] receives them.
pub fn signals() -> SigSet {
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGUSR1, Signal::SIGUSR2] {
        signals.add(signal);
    }
    signals
}

/// What the signal thread acts on.
pub struct Watcher {
    pub state: Arc<Mutex<State>>,
    pub mountpoint: PathBuf,
    pub control: Option<PathBuf>,
    pub log: fn(&Event),
}

impl Watcher {
    /// Apply the control file's faults, if it has one. At startup only a
    /// change from no faults is logged; on SIGUSR1 every reading is.
    pub fn load(&self, on_signal: bool) {
        let Some(control) = &self.control else {
            if on_signal {
                (self.log)(&Event::NoControl);
            }
            return;
        };
        // Read before locking: a control file inside the mount itself
        // would otherwise wait for the lock this thread holds.
        let read = read_control(control);
        let mut state = lock(&self.state);
        let event = match read {
            Ok(faults) => {
                state.faults = faults;
                Event::FaultsApplied { control: control.clone(), faults }
            }
            Err(error) => Event::ControlRejected { control: control.clone(), error, kept: state.faults },
        };
        drop(state);
        let quiet = !on_signal && matches!(&event, Event::FaultsApplied { faults, .. } if *faults == Faults::default());
        if !quiet {
            (self.log)(&event);
        }
    }

    /// Answer signals until a stop signal (the loop lives as long as the
    /// daemon: it ends only at SIGTERM/SIGINT, a torn cut, or if waiting
    /// itself fails, when the mount is left to `serve`'s caller).
    pub fn run(self, signals: SigSet) {
        loop {
            match signals.wait() {
                Ok(Signal::SIGUSR1) => self.load(true),
                Ok(Signal::SIGUSR2) => self.tear_and_exit(),
                Ok(_) => break,
                Err(_) => return,
            }
        }
        // A clean shutdown is no power cut: sync, then let go.
        let _ = lock(&self.state).sync_all();
        let _ = crate::detach(&self.mountpoint);
    }

    fn tear_and_exit(&self) -> ! {
        // The lock is held until the process is gone: no request can write
        // anything through after the tear.
        let state = lock(&self.state);
        let event = match state.tear() {
            Ok(torn) => Event::TornCut(torn),
            Err((torn, error)) => Event::TornCutFailed { torn, error },
        };
        (self.log)(&event);
        std::process::exit(i32::from(EXIT_TORN_CUT));
    }
}
