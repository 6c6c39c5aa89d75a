//! The sans-IO Raft core: `RawNode` takes ticks, messages and proposals and
//! hands back `Ready` batches of entries to persist, messages to send and
//! entries to apply. It opens no sockets or files, reads no clock, and draws
//! randomness only from the seed it is given. See `README.md` beside this file.

mod config;
mod election;
mod error;
mod log;
mod membership;
mod message;
mod node;
mod progress;
mod read_index;
mod read_queue;
mod ready;
mod reconfigure;
mod replication;
mod rules;
mod snapshot_receiver;
mod snapshot_transfer;
mod transfer;
mod types;

pub use config::{Config, ConfigError};
pub use error::{CompactError, NewError, ProposeError, StepError};
pub use membership::{ChangeError, ConfChange, ConfChangeDecodeError, Membership};
pub use message::{AppendRejection, Message, MessageBody};
pub use node::RawNode;
pub use ready::Ready;
pub use snapshot_receiver::SnapshotCheckFn;
pub use transfer::TransferError;
pub use types::{Entry, EntryKind, HardState, ReadState, Restored, Role, Snapshot, SnapshotMeta, Status};
