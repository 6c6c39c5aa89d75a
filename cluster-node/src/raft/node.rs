//! `RawNode`: the public, single-threaded face of the Raft core.

use super::config::Config;
use super::error::{CompactError, NewError, ProposeError, StepError};
use super::message::Message;
use super::ready::Ready;
use super::types::{Restored, Snapshot, Status};

/// One Raft peer's protocol state. Drive it with `tick`, `step`, `propose`
/// and `read_index`; drain work with `has_ready` / `ready` / `advance`.
#[derive(Clone, Debug)]
pub struct RawNode {
    config: Config,
}

impl RawNode {
    /// Builds a core from the configuration and what the server restored from
    /// disk (`Restored::default()` for a fresh node). `rng_seed` drives every
    /// random choice (the election timeouts).
    pub fn new(config: Config, rng_seed: u64, restored: Restored) -> Result<RawNode, NewError> {
        let _ = (config, rng_seed, restored);
        todo!()
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        todo!()
    }

    /// Starts an election now, as if the election timeout had fired.
    pub fn campaign(&mut self) {
        todo!()
    }

    /// Feeds one message from a peer.
    pub fn step(&mut self, message: Message) -> Result<(), StepError> {
        let _ = message;
        todo!()
    }

    /// Appends `data` to the log if this node leads; returns the entry's
    /// (index, term). The entry is acknowledged once it shows up committed.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(u64, u64), ProposeError> {
        let _ = data;
        todo!()
    }

    /// Asks for a linearizable read tagged `ctx`. A later `Ready` carries a
    /// `ReadState { ctx, index }` once a quorum confirmed this leadership.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        let _ = ctx;
        todo!()
    }

    pub fn status(&self) -> Status {
        todo!()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn has_ready(&self) -> bool {
        todo!()
    }

    /// Takes the pending work. Panics if the previous `Ready` was not
    /// `advance`d yet (an API misuse, not an operating error).
    pub fn ready(&mut self) -> Ready {
        todo!()
    }

    /// Acknowledges that `ready` was handled: persisted, sent and applied.
    pub fn advance(&mut self, ready: Ready) {
        let _ = ready;
        todo!()
    }

    /// Drops log entries covered by `snapshot` (a state-machine image at an
    /// index at or below the applied index) and keeps it for lagging followers.
    pub fn compact(&mut self, snapshot: Snapshot) -> Result<(), CompactError> {
        let _ = snapshot;
        todo!()
    }
}
