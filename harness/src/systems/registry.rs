//! The systems a spec can name. Adding one is a folder in `systems/` and
//! one line in [`SYSTEMS`].
use crate::client::ClientFactory;
use crate::plan::SpecError;

use super::{etcd, faultline_node, generic, redis_sentinel, Configured};

/// How a spec reaches one system.
pub struct Registration {
    /// The name in `cluster.system`.
    pub name: &'static str,
    /// One line for `--help` and errors.
    pub about: &'static str,
    /// Reads and checks the system's own fields of the `cluster` section.
    pub configure: fn(&serde_json::Map<String, serde_json::Value>) -> Result<Configured, SpecError>,
    /// The system's client on its own, which `generic` systems may borrow
    /// (`client: etcd`); None: it has none to lend.
    pub protocol: Option<fn() -> ClientFactory>,
}

/// Every system a spec can name, the default first.
pub const SYSTEMS: [&Registration; 4] =
    [&faultline_node::REGISTRATION, &etcd::REGISTRATION, &redis_sentinel::REGISTRATION, &generic::REGISTRATION];

/// The system of a spec that names none.
pub const DEFAULT: &Registration = SYSTEMS[0];

pub fn find(name: &str) -> Option<&'static Registration> {
    SYSTEMS.into_iter().find(|system| system.name == name)
}

/// The system `name` with its fields read from `options`.
pub fn configure(name: &str, options: &serde_json::Map<String, serde_json::Value>) -> Result<Configured, SpecError> {
    let names: Vec<&str> = SYSTEMS.iter().map(|system| system.name).collect();
    let system = find(name).ok_or_else(|| {
        SpecError::value("cluster.system", format!("{name:?} is not a known system ({})", names.join(", ")))
    })?;
    (system.configure)(options)
}

/// The client protocol of system `name`, when it lends one.
pub fn protocol(name: &str) -> Option<ClientFactory> {
    find(name).and_then(|system| system.protocol).map(|clients| clients())
}

/// The names of the systems that lend their client protocol.
pub fn protocol_names() -> Vec<&'static str> {
    SYSTEMS.iter().filter(|system| system.protocol.is_some()).map(|system| system.name).collect()
}
