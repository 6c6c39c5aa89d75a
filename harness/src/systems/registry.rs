//! The systems a spec can name. Adding one is a folder in `systems/` and
//! one line in [`SYSTEMS`].
use crate::fields::SpecError;

use super::{etcd, faultline_node, generic, redis_sentinel, Configured, Lender, Protocols, Registration};

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
    let lent: Vec<Lender> =
        SYSTEMS.iter().filter_map(|system| Some((system.name, system.protocol?))).collect();
    (system.configure)(options, Protocols { lent: &lent })
}

#[cfg(test)]
mod tests {
    use super::configure as registry_configure;
    use serde_json::json;

    fn configure(system: &str, fields: serde_json::Value) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let serde_json::Value::Object(fields) = fields else { panic!("fields are a map") };
        registry_configure(system, &fields).map(|configured| configured.options).map_err(|e| e.to_string())
    }

    #[test]
    fn mode_and_bugs_are_checked_and_every_field_is_resolved() {
        let node = configure("faultline-node", json!({"mode": "async", "bugs": ["stale-read", "no-fsync"]})).unwrap();
        assert_eq!((&node["mode"], &node["bugs"][1]), (&json!("async"), &json!("no-fsync")));
        assert!(node.contains_key("node_binary"), "every field, its default filled in");
        let error = configure("faultline-node", json!({"bugs": ["explode"]})).unwrap_err();
        assert!(error.contains("cluster.bugs") && error.contains("unknown bug `explode`"), "{error}");
        let error = configure("faultline-node", json!({"mode": "quorum"})).unwrap_err();
        assert!(error.contains("cluster.mode"), "{error}");
        let error = configure("etcd", json!({"mode": "sync"})).unwrap_err();
        assert!(error.contains("unknown field `mode`") && error.contains("system etcd"), "{error}");
        let error = configure("faultline-node", json!({"heartbeat_interval": "1s", "election_timeout": "500ms"})).unwrap_err();
        assert!(error.contains("must be below cluster.election_timeout"), "{error}");
        let error = configure("faultline-node", json!({"bugs": "stale-read"})).unwrap_err();
        assert!(error.contains("cluster.bugs") && error.contains("expected a sequence"), "{error}");
    }
}
