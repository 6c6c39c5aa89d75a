//! A generic system's membership commands (`add_member`, `promote_member`,
//! `remove_member`, `members`; harness/docs/adapters.md).
//!
//! A change runs once, against one running member: the one the `leader`
//! command names, else the running members in turn from one change to the
//! next. It sees that member's placeholders and the target's: `{target}`
//! (0-based), `{target_id}` (1-based), `{target_client_addr}` (where the
//! target serves clients; known while it runs, and for `add_member`) and
//! `{target_peer_addr}` / `{target_peer_addr:NAME}` (the proxied address
//! the member dials for the target: with shared routing, the one the
//! target advertises). Exit 0 is done, [`EXIT_RETRY`] is "not now", any
//! other exit is a refusal, explained by the last line of stderr.
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use serde::Deserialize;
use serde_json::Value;

use super::{majority, parse_node, render, run_bounded, Db, Finished, GenericDb, MemberError, Members, NodeEnv};

/// The exit status of a change command that says "not now, try again"
/// (no leader, another change in progress, a learner still behind):
/// `EX_TEMPFAIL` of sysexits.h.
pub const EXIT_RETRY: i32 = 75;
/// Bound on one change command: a change commits through the log, so it
/// may take longer than a probe. A command that runs out of time may have
/// done its change; the harness retries, and a later refusal is checked
/// against the `members` answer.
const CHANGE_COMMAND_TIMEOUT_MS: u64 = 5_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    Add,
    Promote,
    Remove,
}

impl Change {
    fn field(self) -> &'static str {
        match self {
            Change::Add => "add_member",
            Change::Promote => "promote_member",
            Change::Remove => "remove_member",
        }
    }
}

impl GenericDb {
    /// Runs the command of `change` for `target` against one running
    /// member. `target_env` is the target's, if the caller has it; else it
    /// is looked up among `members`.
    pub(super) async fn change(
        &self,
        change: Change,
        target: usize,
        target_env: Option<&NodeEnv>,
        members: &[NodeEnv],
    ) -> Result<(), MemberError> {
        if !self.membership.supported() {
            return Err(MemberError::Unsupported);
        }
        let commands = &self.membership;
        let template = match change {
            Change::Add => commands.add_member.as_deref(),
            Change::Promote => commands.promote_member.as_deref(),
            Change::Remove => commands.remove_member.as_deref(),
        };
        // Without promote_member an added node is done once added.
        let Some(template) = template else { return Ok(()) };
        let Some(member) = self.member_to_ask(members).await else {
            return Err(MemberError::Retry("no member is running".into()));
        };
        let target_env = target_env.or_else(|| members.iter().find(|env| env.node == target));
        let text = render_target(template, target, target_env, member).map_err(MemberError::Retry)?;
        let finished = run_bounded(self.shell(render(&text, member)), CHANGE_COMMAND_TIMEOUT_MS).await;
        answer(change.field(), finished)
    }

    /// The membership the running `members` report: the answer more than
    /// half of those answering give, as the leader is chosen.
    pub(super) async fn reported_members(&self, members: &[NodeEnv]) -> Option<Members> {
        let outputs = self.probe_all(self.membership.members.as_deref()?, members).await;
        let answers: Vec<(Vec<usize>, Vec<usize>)> =
            outputs.iter().filter_map(|output| parse_members(output)).map(|reported| (reported.voters, reported.learners)).collect();
        let (voters, learners) = majority(&answers)?;
        Some(Members { voters, learners })
    }

    /// The member a change is sent through: the leader, when the `leader`
    /// command names a running member; else the next in turn.
    async fn member_to_ask<'a>(&self, members: &'a [NodeEnv]) -> Option<&'a NodeEnv> {
        if members.is_empty() {
            return None;
        }
        if self.leader.is_some() {
            if let Some(leader) = self.leader(members).await {
                if let Some(env) = members.iter().find(|env| env.node == leader) {
                    return Some(env);
                }
            }
        }
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        members.get(turn % members.len())
    }
}

/// `template` with the target's placeholders filled in (the member's are
/// filled by `render`); Err when it names the client address of a target
/// that is not running.
fn render_target(template: &str, target: usize, target_env: Option<&NodeEnv>, member: &NodeEnv) -> Result<String, String> {
    let mut text = template.replace("{target}", &target.to_string()).replace("{target_id}", &(target + 1).to_string());
    if text.contains("{target_client_addr}") {
        let env = target_env.ok_or_else(|| format!("n{}'s client address is known only while it runs", target + 1))?;
        text = text.replace("{target_client_addr}", &env.client_listen.to_string());
    }
    let own_dial = target_env.map(|env| env.peer_dial.as_slice()).unwrap_or_default();
    let listen = target_env.map(|env| env.peer_listen);
    text = text.replace("{target_peer_addr}", &peer_addr(target, &member.peer_dial, own_dial, listen));
    for (index, port) in member.named_peers.iter().enumerate() {
        let own = target_env.and_then(|env| env.named_peers.get(index));
        let own_dial = own.map(|own| own.dial.as_slice()).unwrap_or_default();
        let address = peer_addr(target, &port.dial, own_dial, own.map(|own| own.listen));
        text = text.replace(&format!("{{target_peer_addr:{}}}", port.name), &address);
    }
    Ok(text)
}

/// The target's peer address as others reach it: the member's route to it,
/// else its own advertised entry (shared routing), else where it listens.
fn peer_addr(target: usize, member_dial: &[(usize, SocketAddr)], own_dial: &[(usize, SocketAddr)], listen: Option<SocketAddr>) -> String {
    let route = |dial: &[(usize, SocketAddr)]| dial.iter().find(|(node, _)| *node == target).map(|(_, addr)| *addr);
    route(member_dial).or_else(|| route(own_dial)).or(listen).map(|addr| addr.to_string()).unwrap_or_default()
}

/// What a change command's end means: exit 0 done, [`EXIT_RETRY`] not now,
/// a command that did not finish not known (retried), anything else
/// refused, with the last line of stderr.
fn answer(field: &str, finished: Result<Finished, String>) -> Result<(), MemberError> {
    let finished = finished.map_err(|reason| MemberError::Retry(format!("{field} {reason}")))?;
    let last_line = finished.stderr.lines().map(str::trim).rfind(|line| !line.is_empty());
    let explain = |what: String| match last_line {
        Some(line) => format!("{line} ({what})"),
        None => what,
    };
    match finished.code {
        Some(0) => Ok(()),
        Some(EXIT_RETRY) => Err(MemberError::Retry(explain(format!("{field} exited {EXIT_RETRY}: try again")))),
        Some(code) => Err(MemberError::Refused(explain(format!("{field} exited {code}")))),
        None => Err(MemberError::Refused(explain(format!("{field} was killed by a signal")))),
    }
}

/// A `members` command's answer: `{"voters":[..],"learners":[..]}`, each
/// node as the `leader` command names one (`2` or `"2"` for node 2, `"n3"`
/// for it by id); `learners` may be left out. None: unreadable, or a node
/// named both a voter and a learner.
fn parse_members(output: &str) -> Option<Members> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Reported {
        voters: Vec<Value>,
        #[serde(default)]
        learners: Vec<Value>,
    }
    let reported: Reported = serde_json::from_str(output.trim()).ok()?;
    let nodes = |names: &[Value]| -> Option<Vec<usize>> {
        let mut nodes = names.iter().map(node_named).collect::<Option<Vec<usize>>>()?;
        nodes.sort_unstable();
        nodes.dedup();
        Some(nodes)
    };
    let members = Members { voters: nodes(&reported.voters)?, learners: nodes(&reported.learners)? };
    members.voters.iter().all(|voter| !members.learners.contains(voter)).then_some(members)
}

fn node_named(name: &Value) -> Option<usize> {
    match name {
        Value::Number(number) => usize::try_from(number.as_u64()?).ok(),
        Value::String(text) => parse_node(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{NamedPeerPort, PeerRouting};
    use crate::systems::generic::MemberCommands;

    fn env(node: usize) -> NodeEnv {
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        NodeEnv {
            node,
            data_dir: format!("/tmp/g{node}").into(),
            log_path: "/tmp/l".into(),
            client_listen: addr(7000 + node as u16),
            peer_listen: addr(8000 + node as u16),
            // Per-pair: node i dials node j at 9000 + 10 i + j.
            peer_dial: (0..4).filter(|peer| *peer != node).map(|peer| (peer, addr(9000 + 10 * node as u16 + peer as u16))).collect(),
            client_peer_dial: Vec::new(),
            named_peers: Vec::new(),
            seed: 1,
            initial_members: vec![0, 1, 2],
            joining: None,
        }
    }

    #[test]
    fn change_commands_see_the_member_and_the_target() {
        let template = "{node} {id} {client_addr} -> {target} {target_id} {target_client_addr} {target_peer_addr}";
        let text = render(&render_target(template, 3, Some(&env(3)), &env(1)).unwrap(), &env(1));
        assert_eq!(text, "1 2 127.0.0.1:7001 -> 3 4 127.0.0.1:7003 127.0.0.1:9013", "the member's route to the target");
        let absent = render_target("{target_client_addr}", 3, None, &env(1)).unwrap_err();
        assert_eq!(absent, "n4's client address is known only while it runs");
        assert_eq!(render_target("{target_peer_addr}", 3, None, &env(1)).unwrap(), "127.0.0.1:9013", "needs no target env");
        let mut member = env(1);
        member.named_peers.push(NamedPeerPort {
            name: "election".into(),
            listen: "127.0.0.1:8101".parse().unwrap(),
            dial: vec![(3, "127.0.0.1:9103".parse().unwrap())],
        });
        assert_eq!(render_target("{target_peer_addr:election}", 3, None, &member).unwrap(), "127.0.0.1:9103");
        // A target no route names: its own advertised entry, else where it listens.
        member.peer_dial.clear();
        let mut shared = env(3);
        shared.peer_dial.push((3, "127.0.0.1:9333".parse().unwrap()));
        assert_eq!(render_target("{target_peer_addr}", 3, Some(&shared), &member).unwrap(), "127.0.0.1:9333");
        assert_eq!(render_target("{target_peer_addr}", 3, Some(&env(3)), &member).unwrap(), "127.0.0.1:8003");
    }

    fn finished(code: Option<i32>, stderr: &str) -> Result<Finished, String> {
        Ok(Finished { code, stdout: String::new(), stderr: stderr.into() })
    }

    #[test]
    fn exit_statuses_are_done_retry_or_refused() {
        assert_eq!(answer("add_member", finished(Some(0), "noise\n")), Ok(()));
        let retry = answer("add_member", finished(Some(EXIT_RETRY), "no leader\n"));
        assert_eq!(retry, Err(MemberError::Retry("no leader (add_member exited 75: try again)".into())));
        let refused = answer("remove_member", finished(Some(1), "warning: x\nn2 is the last voter\n\n"));
        assert_eq!(refused, Err(MemberError::Refused("n2 is the last voter (remove_member exited 1)".into())));
        assert_eq!(answer("remove_member", finished(Some(2), "")), Err(MemberError::Refused("remove_member exited 2".into())));
        assert!(matches!(answer("add_member", finished(None, "")), Err(MemberError::Refused(_))));
        let lost = answer("promote_member", Err("did not finish within 5000 ms".into()));
        assert_eq!(lost, Err(MemberError::Retry("promote_member did not finish within 5000 ms".into())));
    }

    #[test]
    fn members_are_named_as_the_leader_is() {
        let members = |voters: &[usize], learners: &[usize]| Some(Members { voters: voters.to_vec(), learners: learners.to_vec() });
        assert_eq!(parse_members(r#"{"voters":[2,0,1],"learners":[3]}"#), members(&[0, 1, 2], &[3]));
        assert_eq!(parse_members(" {\"voters\":[\"n1\",\"2\",\"n2\"]}\n"), members(&[0, 1, 2], &[]), "n1 is node 0, and learners may be left out");
        assert_eq!(parse_members(r#"{"voters":[0],"learners":[]}"#), members(&[0], &[]));
        for unreadable in ["", "0,1,2", r#"{"learners":[1]}"#, r#"{"voters":[-1]}"#, r#"{"voters":["n0"]}"#, r#"{"voters":[1],"learners":[1]}"#, r#"{"voters":[1],"extra":1}"#] {
            assert_eq!(parse_members(unreadable), None, "{unreadable}");
        }
    }

    fn db(membership: MemberCommands, leader: Option<&str>) -> GenericDb {
        GenericDb {
            name: "toy".into(),
            start: "exec sleep 5".into(),
            wipe: None,
            ready: None,
            leader: leader.map(str::to_string),
            digest: None,
            clock: None,
            peer_routing: PeerRouting::PerPair,
            peer_ports: Vec::new(),
            log_error_patterns: vec![],
            membership,
            turn: Default::default(),
            dir: None,
        }
    }

    fn commands(add: &str, promote: Option<&str>, members: Option<&str>) -> MemberCommands {
        MemberCommands {
            add_member: Some(add.into()),
            promote_member: promote.map(str::to_string),
            remove_member: Some("exit 0".into()),
            members: members.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn changes_go_to_the_leader_or_to_the_members_in_turn() {
        let members: Vec<NodeEnv> = (0..3).map(env).collect();
        let ask_node_1 = commands("test {node} = 1 || exit 75", None, None);
        assert_eq!(db(ask_node_1.clone(), Some("echo n2")).change(Change::Add, 3, Some(&env(3)), &members).await, Ok(()));
        let in_turn = db(ask_node_1, None);
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(in_turn.change(Change::Add, 3, Some(&env(3)), &members).await.is_ok());
        }
        assert_eq!(answers, [false, true, false], "nodes 0, 1, 2 in turn");
        let nobody = db(commands("exit 0", None, None), None).change(Change::Add, 3, None, &[]).await;
        assert_eq!(nobody, Err(MemberError::Retry("no member is running".into())));
    }

    #[tokio::test]
    async fn promotion_is_optional_and_membership_needs_add_and_remove() {
        let members: Vec<NodeEnv> = (0..3).map(env).collect();
        let without = db(commands("exit 0", None, None), None);
        assert_eq!(without.change(Change::Promote, 3, None, &members).await, Ok(()), "done once added");
        let with = db(commands("exit 0", Some("echo {target_id} is behind >&2; exit 75"), None), None);
        assert_eq!(with.change(Change::Promote, 3, None, &members).await, Err(MemberError::Retry("4 is behind (promote_member exited 75: try again)".into())));
        let add_only = MemberCommands { remove_member: None, ..commands("exit 0", None, None) };
        assert!(!db(add_only.clone(), None).supports_membership());
        assert!(db(commands("exit 0", None, None), None).supports_membership());
        assert_eq!(db(add_only, None).change(Change::Add, 3, None, &members).await, Err(MemberError::Unsupported));
    }

    #[tokio::test]
    async fn the_reported_membership_is_what_most_members_say() {
        let members: Vec<NodeEnv> = (0..3).map(env).collect();
        let reported = |command: &str| db(commands("exit 0", None, Some(command)), None);
        let most = reported(r#"test {node} = 2 && echo '{"voters":[0]}' || echo '{"voters":[0,1,2],"learners":["n4"]}'"#);
        assert_eq!(most.members(&members).await, Some(Members { voters: vec![0, 1, 2], learners: vec![3] }));
        assert_eq!(reported(r#"echo '{"voters":[{node}]}'"#).members(&members).await, None, "no two agree");
        assert_eq!(db(commands("exit 0", None, None), None).members(&members).await, None, "no command");
    }
}
