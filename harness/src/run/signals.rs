//! SIGINT and SIGTERM as one stream, so every phase of a run can stop on
//! either and leave nothing running.
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::RunError;

pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    pub fn install() -> Result<Signals, RunError> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).map_err(RunError::Signals)?,
            terminate: signal(SignalKind::terminate()).map_err(RunError::Signals)?,
        })
    }

    /// The name of the next signal to arrive.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}
