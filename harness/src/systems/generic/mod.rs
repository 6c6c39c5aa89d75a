//! `generic`: any system, described by commands instead of code (see
//! harness/docs/adapters.md). The `cluster.generic` section says how to
//! start, wipe and probe a node ([`db`]) and which client to use: an
//! external program of the user's speaking faultline's line protocol
//! ([`external`]), or the client of a registered system. Optional
//! membership commands ([`MemberCommands`]) let the `membership` faults run;
//! transactions run when the borrowed client runs them, or when the spec
//! says the external program does ([`ProgramTransactions`]).
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Client, ClientConfig, ClientFactory};
use crate::cluster::{ClusterError, Db, PeerRouting};
use crate::fields::SpecError;

use super::{fields_of, read_options, Capabilities, Configured, Protocols, Registration, System};

pub mod db;
pub mod external;

pub use db::{GenericDb, EXIT_RETRY};
pub use external::{ExternalClient, ExternalCommand};

pub const REGISTRATION: Registration =
    Registration { name: "generic", about: "any system, described by shell commands", configure, protocol: None };

/// The fields this system reads from the `cluster` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    pub generic: Option<GenericSpec>,
}

/// The `cluster.generic` part of a spec: a system described by commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericSpec {
    /// Runs node i in the foreground (`exec` the server).
    pub start: String,
    /// Deletes node i's state (default: empty its data dir).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wipe: Option<String>,
    /// Exits 0 once node i is ready (default: its client port accepts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Prints the leader as node i sees it (a 0-based index, or `n1` for
    /// node 0), or nothing; without it the system names no leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Prints a digest of node i's applied state, optionally after the
    /// position it covers (`POSITION DIGEST`); turns on the convergence check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Prints node i's wall clock as the node reads it: Unix seconds (a
    /// fraction allowed), optionally followed by microseconds (what Redis's
    /// `TIME` prints); clock faults need it, to see that libfaketime
    /// reaches the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
    /// `per-pair` (each node its own view of its peers) or `shared`.
    #[serde(default = "per_pair")]
    pub peer_routing: String,
    /// Further peer ports each node serves, by name, beside the main one
    /// (`[election]`): each is proxied and partitioned like the main one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peer_ports: Vec<String>,
    #[serde(default)]
    pub log_error_patterns: Vec<String>,
    /// `external`, or a registered system that lends its client
    /// (`faultline-node`, `etcd`, `redis-sentinel`).
    pub client: String,
    /// The external client program (`client: external`), run by /bin/sh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_command: Option<String>,
}

/// The optional membership commands of `cluster.generic`. Each change runs
/// against one running member, with that member's placeholders and the
/// target's (`{target}`, `{target_id}`, `{target_client_addr}`,
/// `{target_peer_addr}`); see `db/membership.rs`. They sit beside
/// [`GenericSpec`] rather than in it, so code that builds a GenericSpec
/// field by field (tests, library users) keeps compiling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberCommands {
    /// Asks the cluster to take in the target as a learner (a member that
    /// replicates but does not vote), before the target is started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_member: Option<String>,
    /// Makes the learner target a voter; without it a node counts as done
    /// once added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_member: Option<String>,
    /// Takes the target out of the cluster; the harness stops it afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_member: Option<String>,
    /// Prints `{"voters":[..],"learners":[..]}` as node i knows it (each
    /// node as the `leader` command names one: `2` or `"n3"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<String>,
}

impl MemberCommands {
    const FIELDS: [&'static str; 4] = ["add_member", "promote_member", "remove_member", "members"];

    /// Membership changes work: `add_member` and `remove_member` are given.
    pub fn supported(&self) -> bool {
        self.add_member.is_some() && self.remove_member.is_some()
    }

    fn templates(&self) -> Vec<(&'static str, &str)> {
        let fields = [&self.add_member, &self.promote_member, &self.remove_member, &self.members];
        Self::FIELDS.into_iter().zip(fields).filter_map(|(field, template)| Some((field, template.as_deref()?))).collect()
    }

    /// Each command checked like `spec`'s own; a change needs both `add_member`
    /// and `remove_member`, and the other two are only used with them.
    pub fn validate(&self, spec: &GenericSpec) -> Result<(), (String, String)> {
        let error = |field: &str, message: &str| Err((format!("cluster.generic.{field}"), message.to_string()));
        for (field, template) in self.templates() {
            if template.trim().is_empty() {
                return error(field, "must be a command");
            }
            if let Err(message) = spec.check_placeholders(template) {
                return Err((format!("cluster.generic.{field}"), message));
            }
        }
        match (&self.add_member, &self.remove_member) {
            (Some(_), None) => error("remove_member", "is required with add_member (a system that adds nodes must remove them)"),
            (None, Some(_)) => error("add_member", "is required with remove_member (a system that removes nodes must add them)"),
            (None, None) if self.promote_member.is_some() => error("promote_member", "is only used with add_member and remove_member"),
            (None, None) if self.members.is_some() => error("members", "is only used with add_member and remove_member"),
            _ => Ok(()),
        }
    }
}

/// `cluster.generic.transactions`: the external program handles `f: "txn"`
/// (list-append transactions, each applied atomically). Beside
/// [`GenericSpec`] for the reason [`MemberCommands`] is. A borrowed client
/// runs transactions when the system lending it does, so the field is
/// only for `client: external`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramTransactions {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transactions: bool,
}

impl ProgramTransactions {
    const FIELDS: [&'static str; 1] = ["transactions"];

    /// `transactions: true` only with `client: external`; the error says
    /// whether the borrowed client runs transactions on its own.
    pub fn validate(&self, spec: &GenericSpec, protocols: Protocols<'_>) -> Result<(), (String, String)> {
        if !self.transactions || spec.client == EXTERNAL {
            return Ok(());
        }
        let runs = protocols.get(&spec.client).is_some_and(|protocol| protocol.transactions);
        let lender = if runs { "runs them as its system does" } else { "runs none" };
        let message = format!("is only used with client: external (client {} {lender})", spec.client);
        Err(("cluster.generic.transactions".to_string(), message))
    }
}

/// Takes `fields` out of the `cluster.generic` section of `options` and
/// reads them as a `T`, so what is left reads as a [`GenericSpec`]; errors
/// name the field.
fn take_fields<T: DeserializeOwned>(options: &mut serde_json::Map<String, Value>, names: &[&str]) -> Result<T, SpecError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section<U> {
        generic: U,
    }
    let mut fields = serde_json::Map::new();
    if let Some(Value::Object(section)) = options.get_mut("generic") {
        for name in names {
            if let Some(value) = section.remove(*name) {
                fields.insert(name.to_string(), value);
            }
        }
    }
    let section = serde_json::Map::from_iter([("generic".to_string(), Value::Object(fields))]);
    Ok(read_options::<Section<T>>(REGISTRATION.name, &section)?.generic)
}

fn per_pair() -> String {
    "per-pair".to_string()
}

/// The client `client: external` names.
const EXTERNAL: &str = "external";

impl GenericSpec {
    /// Every field checked against the protocols other systems lend; the
    /// error names the field.
    pub fn validate(&self, protocols: Protocols<'_>) -> Result<(), (String, String)> {
        let error = |field: &str, message: String| Err((format!("cluster.generic.{field}"), message));
        if self.start.trim().is_empty() {
            return error("start", "must be a command".into());
        }
        if self.routing().is_none() {
            return error("peer_routing", format!("{:?} is not per-pair or shared", self.peer_routing));
        }
        if let Err(message) = self.check_ports() {
            return error("peer_ports", message);
        }
        for (field, template) in self.templates() {
            if let Err(message) = self.check_placeholders(template) {
                return error(field, message);
            }
        }
        let mut clients = vec![EXTERNAL];
        clients.extend(protocols.names());
        if !clients.contains(&self.client.as_str()) {
            return error("client", format!("{:?} is not one of {}", self.client, clients.join(", ")));
        }
        match (&self.client[..], &self.client_command) {
            (EXTERNAL, None) => error("client_command", "is required with client: external".into()),
            (EXTERNAL, Some(command)) if command.trim().is_empty() => error("client_command", "is empty".into()),
            (EXTERNAL, Some(_)) | (_, None) => Ok(()),
            (_, Some(_)) => error("client_command", "is only used with client: external".into()),
        }
    }

    fn templates(&self) -> Vec<(&'static str, &str)> {
        let optional = [("wipe", &self.wipe), ("ready", &self.ready), ("leader", &self.leader), ("digest", &self.digest)];
        let mut templates = vec![("start", self.start.as_str())];
        templates.extend(optional.into_iter().filter_map(|(field, template)| Some((field, template.as_deref()?))));
        templates
    }

    fn check_ports(&self) -> Result<(), String> {
        for (index, name) in self.peer_ports.iter().enumerate() {
            let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !plain {
                return Err(format!("{name:?} is not a name of letters, digits, '-' and '_'"));
            }
            if self.peer_ports[..index].contains(name) {
                return Err(format!("{name:?} is named twice"));
            }
        }
        Ok(())
    }

    /// Placeholders of named ports must name a declared port; the
    /// advertised address exists only with shared routing.
    fn check_placeholders(&self, template: &str) -> Result<(), String> {
        const PORT_PLACEHOLDERS: [&str; 7] =
            ["peer_addr", "peer_port", "peers", "peer_addrs", "advertise_addr", "advertise_port", "target_peer_addr"];
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else { break };
            let token = &rest[open + 1..open + close];
            rest = &rest[open + close + 1..];
            let (placeholder, port) = token.split_once(':').map_or((token, None), |(p, n)| (p, Some(n)));
            if !PORT_PLACEHOLDERS.contains(&placeholder) {
                continue;
            }
            if port.is_some_and(|port| !self.peer_ports.iter().any(|name| name == port)) {
                return Err(format!("{{{token}}} names no port of peer_ports ({})", self.peer_ports.join(", ")));
            }
            if placeholder.starts_with("advertise") && self.routing() != Some(PeerRouting::Shared) {
                return Err(format!("{{{token}}} needs peer_routing: shared (with per-pair routes a node has no one address)"));
            }
        }
        Ok(())
    }

    pub fn routing(&self) -> Option<PeerRouting> {
        match self.peer_routing.as_str() {
            "per-pair" => Some(PeerRouting::PerPair),
            "shared" => Some(PeerRouting::Shared),
            _ => None,
        }
    }

    /// The Db for a validated spec, without membership commands (set
    /// [`GenericDb::membership`] to add them).
    pub fn db(&self, dir: Option<PathBuf>) -> GenericDb {
        GenericDb {
            name: "generic".to_string(),
            start: self.start.clone(),
            wipe: self.wipe.clone(),
            ready: self.ready.clone(),
            leader: self.leader.clone(),
            digest: self.digest.clone(),
            clock: self.clock.clone(),
            peer_ports: self.peer_ports.clone(),
            peer_routing: self.routing().unwrap_or(PeerRouting::PerPair),
            log_error_patterns: self.log_error_patterns.clone(),
            membership: MemberCommands::default(),
            turn: Arc::default(),
            dir,
        }
    }
}

/// A generic system, configured.
#[derive(Debug, Clone)]
pub struct Generic {
    pub spec: GenericSpec,
    pub membership: MemberCommands,
    /// The client protocol `client:` borrows; None: the external program.
    pub borrowed: Option<fn() -> ClientFactory>,
    /// The client runs transactions: the borrowed one because its system
    /// says so, the external program because the spec does.
    pub transactions: bool,
}

fn configure(options: &serde_json::Map<String, serde_json::Value>, protocols: Protocols<'_>) -> Result<Configured, SpecError> {
    let mut options = options.clone();
    let membership: MemberCommands = take_fields(&mut options, &MemberCommands::FIELDS)?;
    let program: ProgramTransactions = take_fields(&mut options, &ProgramTransactions::FIELDS)?;
    let options: Options = read_options(REGISTRATION.name, &options)?;
    let spec = options.generic.clone().ok_or_else(|| {
        SpecError::value("cluster.generic", "system: generic needs a cluster.generic section (start, client, ...)")
    })?;
    spec.validate(protocols).map_err(|(field, message)| SpecError::value(&field, message))?;
    membership.validate(&spec).map_err(|(field, message)| SpecError::value(&field, message))?;
    program.validate(&spec, protocols).map_err(|(field, message)| SpecError::value(&field, message))?;
    let lent = protocols.get(&spec.client);
    let borrowed = lent.map(|protocol| protocol.clients);
    let transactions = lent.map_or(program.transactions, |protocol| protocol.transactions);
    let generic = Generic { spec, membership: membership.clone(), borrowed, transactions };
    let mut configured = Configured::new(Arc::new(generic), &options);
    // The resolved spec shows the fields taken out where they were written.
    if let Some(Value::Object(section)) = configured.options.get_mut("generic") {
        section.extend(fields_of(&membership));
        section.extend(fields_of(&program));
    }
    Ok(configured)
}

impl System for Generic {
    fn name(&self) -> &str {
        REGISTRATION.name
    }

    /// A generic system names its leader only with a `leader` command;
    /// without one, leader-targeted faults hit a seeded random node and
    /// are recorded as such.
    /// Membership changes need both `add_member` and `remove_member`;
    /// transactions, see [`Generic::transactions`].
    fn capabilities(&self) -> Capabilities {
        let membership = self.membership.supported();
        let transactions = self.transactions;
        Capabilities { leader: self.spec.leader.is_some(), digest: self.spec.digest.is_some(), membership, transactions }
    }

    fn db(&self) -> Result<Arc<dyn Db>, ClusterError> {
        Ok(Arc::new(GenericDb { membership: self.membership.clone(), ..self.spec.db(None) }))
    }

    fn clients(&self) -> ClientFactory {
        if let Some(clients) = self.borrowed {
            return clients();
        }
        // Validated: anything else is external, with its command.
        let command = Arc::new(ExternalCommand { command: self.spec.client_command.clone().unwrap_or_default(), dir: None });
        Arc::new(move |config: Arc<ClientConfig>, process| {
            Box::new(ExternalClient::new(config, command.clone(), process)) as Box<dyn Client>
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lenders() -> Vec<crate::systems::Lender> {
        let clients: fn() -> ClientFactory = || unreachable!("not built in this test");
        vec![
            ("faultline-node", crate::systems::Protocol { clients, transactions: true }),
            ("etcd", crate::systems::Protocol { clients, transactions: true }),
        ]
    }
    #[test]
    fn specs_are_validated_field_by_field() {
        let spec = GenericSpec {
            start: "exec ./server {client_addr}".into(),
            wipe: None,
            ready: None,
            leader: None,
            digest: None,
            clock: None,
            peer_routing: "per-pair".into(),
            peer_ports: Vec::new(),
            log_error_patterns: vec![],
            client: "external".into(),
            client_command: Some("python3 client.py".into()),
        };
        let lent = lenders();
        let protocols = Protocols { lent: &lent };
        assert_eq!(spec.validate(protocols), Ok(()));
        let field = |spec: GenericSpec| spec.validate(protocols).unwrap_err().0;
        assert_eq!(field(GenericSpec { client_command: None, ..spec.clone() }), "cluster.generic.client_command");
        assert_eq!(field(GenericSpec { client: "grpc".into(), ..spec.clone() }), "cluster.generic.client");
        assert_eq!(field(GenericSpec { peer_routing: "mesh".into(), ..spec.clone() }), "cluster.generic.peer_routing");
        assert_eq!(field(GenericSpec { start: " ".into(), ..spec.clone() }), "cluster.generic.start");
        let etcd = GenericSpec { client: "etcd".into(), ..spec.clone() };
        assert_eq!(field(etcd.clone()), "cluster.generic.client_command");
        assert_eq!(GenericSpec { client_command: None, ..etcd }.validate(protocols), Ok(()));
        let two = GenericSpec { start: "exec ./node {peer_port:election} {peers:election}".into(), peer_ports: vec!["election".into()], ..spec.clone() };
        assert_eq!(two.validate(protocols), Ok(()));
        assert_eq!(field(GenericSpec { peer_ports: vec![], ..two.clone() }), "cluster.generic.start", "an undeclared port");
        assert_eq!(field(GenericSpec { peer_ports: vec!["a b".into()], ..two.clone() }), "cluster.generic.peer_ports");
        assert_eq!(field(GenericSpec { peer_ports: vec!["election".into(), "election".into()], ..two.clone() }), "cluster.generic.peer_ports");
        let advertise = GenericSpec { start: "exec ./node --advertise {advertise_addr}".into(), ..spec.clone() };
        assert_eq!(field(advertise.clone()), "cluster.generic.start", "advertising needs shared routing");
        assert_eq!(GenericSpec { peer_routing: "shared".into(), ..advertise }.validate(protocols), Ok(()));
        assert_eq!(GenericSpec { start: "exec sh -c 'echo ${HOME}'".into(), ..spec.clone() }.validate(protocols), Ok(()), "shell braces are left alone");
    }

    fn section(extra: &str) -> serde_json::Map<String, Value> {
        let yaml = format!("generic:\n  start: exec ./server {{client_addr}}\n  client: external\n  client_command: ./client\n{extra}");
        serde_saphyr::from_str(&yaml).unwrap()
    }

    fn configured(extra: &str) -> Result<Configured, String> {
        let lent = lenders();
        configure(&section(extra), Protocols { lent: &lent }).map_err(|error| error.to_string())
    }

    #[test]
    fn membership_needs_add_and_remove_and_each_field_is_named() {
        let both = "  add_member: ./admin add {target_id} {target_peer_addr}\n  remove_member: ./admin remove {target_id}\n";
        let done = configured(&format!("{both}  members: ./admin members\n")).unwrap();
        assert!(done.system.capabilities().membership);
        assert!(done.system.db().unwrap().supports_membership());
        let written = &done.options["generic"];
        assert_eq!(written["remove_member"], "./admin remove {target_id}", "the resolved spec keeps them: {written}");
        assert!(written.get("promote_member").is_none());
        let plain = configured("").unwrap();
        assert!(!plain.system.capabilities().membership && !plain.system.db().unwrap().supports_membership());
        let error = |extra: &str| configured(extra).err().unwrap_or_else(|| panic!("{extra:?} is accepted"));
        let one_line = error("  add_member: ./admin add {target_id}\n");
        assert!(one_line.contains("cluster.generic.remove_member") && one_line.contains("is required with add_member"), "{one_line}");
        assert!(!one_line.contains('\n'), "{one_line}");
        assert!(error("  remove_member: ./admin rm\n").contains("cluster.generic.add_member"));
        assert!(error("  members: ./admin members\n").contains("cluster.generic.members"));
        assert!(error("  promote_member: ./admin promote\n").contains("cluster.generic.promote_member"));
        assert!(error(&format!("{both}  promote_member: ' '\n")).contains("cluster.generic.promote_member"));
        assert!(error(&format!("{both}  members: [1]\n")).contains("cluster.generic.members"), "a type error names its field");
        let port = error(&format!("{both}  members: ./admin {{target_peer_addr:election}}\n"));
        assert!(port.contains("cluster.generic.members") && port.contains("names no port"), "{port}");
        assert!(error("  remove_membr: x\n").contains("unknown field"), "typos are still refused");
    }

    #[test]
    fn an_external_program_runs_transactions_when_the_spec_says_so() {
        assert!(!configured("").unwrap().system.capabilities().transactions);
        let program = configured("  transactions: true\n").unwrap();
        assert!(program.system.capabilities().transactions);
        assert_eq!(program.options["generic"]["transactions"], true, "the resolved spec keeps it");
        assert!(configured("  transactions: false\n").unwrap().options["generic"].get("transactions").is_none());
        let error = configured("  transactions: 1\n").err().unwrap_or_default();
        assert!(error.contains("cluster.generic.transactions"), "a type error names its field: {error}");
    }
}
