//! etcd's membership requests through its v3 JSON gateway:
//! `/v3/cluster/member/{list,add,promote,remove}`, and leadership transfer
//! (`/v3/maintenance/transfer-leadership`).
//!
//! Member IDs are uint64s, which the gateway writes as JSON strings. A
//! member is matched to its node by name (`n{node}`), or, while it has no
//! name (added but not started yet), by its peer URL, the shared proxied
//! peer address every node advertises. Requests go to the member most
//! members name as leader first, then to the others in order (etcd
//! forwards them to its leader anyway); a learner answers none of them.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::probe;
use super::super::http::HttpConnection;
use crate::cluster::{majority, MemberError, Members, NodeEnv};
use crate::nemesis::node_name;

/// Bound on connecting to one member.
const CONNECT_TIMEOUT_MS: u64 = 500;
/// Bound on one change request to one member: etcd answers once the
/// change is applied (its own bound is 5 s plus two election timeouts; a
/// lost answer is retried, and the cluster checks what was done).
const CHANGE_TIMEOUT_MS: u64 = 3_000;
/// Bound on one change request over every member tried.
const CHANGE_TOTAL_MS_MAX: u64 = 6_000;
/// Bound on one member list or status request.
const LIST_TIMEOUT_MS: u64 = 1_000;

/// What one member answered to one request.
#[derive(Clone, Debug, PartialEq)]
enum Answer {
    /// HTTP 200, with its body.
    Done(Value),
    /// etcd's error: its message and gRPC code.
    Failed { message: String, code: Option<i64> },
    /// No answer in time: the request may still have been done.
    Lost(String),
}

/// How to go on after an error answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// This member cannot serve the request; another may.
    Elsewhere,
    /// The cluster says not now.
    Retry,
    /// The cluster says no.
    Refused,
}

/// Messages (substrings of etcd's) that mean another member may serve
/// the request: a learner, a removed or stopping member, one without a
/// leader.
const ELSEWHERE: [&str; 4] =
    ["rpc not supported for learner", "permanently removed", "server stopped", "no leader"];

/// Messages that mean the cluster may do it later: the learner is behind,
/// one learner is already waiting, a member connected too recently (etcd's
/// strict reconfiguration check), the request timed out, or the leader
/// changed under it.
const TRANSIENT: [&str; 10] = [
    "in sync with leader",
    "not in sync",
    "too many learner",
    "unhealthy cluster",
    "not enough started members",
    "timed out",
    "leader changed",
    "too many requests",
    "deadline exceeded",
    "cancel",
];

/// gRPC codes that are transient whatever the message: DeadlineExceeded,
/// Unavailable.
const TRANSIENT_CODES: [i64; 2] = [4, 14];

fn fate(message: &str, code: Option<i64>) -> Fate {
    let lower = message.to_ascii_lowercase();
    if ELSEWHERE.iter().any(|word| lower.contains(word)) {
        Fate::Elsewhere
    } else if TRANSIENT.iter().any(|word| lower.contains(word)) || code.is_some_and(|code| TRANSIENT_CODES.contains(&code)) {
        Fate::Retry
    } else {
        Fate::Refused
    }
}

/// Add `env`'s node as a learner, by its advertised peer URL.
pub(super) async fn add(node: usize, env: &NodeEnv, members: &[NodeEnv]) -> Result<(), MemberError> {
    let Some(advertised) = env.advertised() else {
        return Err(MemberError::Refused(format!("etcd node {node} has no advertised peer address")));
    };
    let body = format!(r#"{{"peerURLs":["http://{advertised}"],"isLearner":true}}"#);
    change("/v3/cluster/member/add", &body, members).await.map(|_| ())
}

/// Promote the learner `node`.
pub(super) async fn promote(node: usize, members: &[NodeEnv]) -> Result<(), MemberError> {
    let id = member_id(node, members).await?;
    change("/v3/cluster/member/promote", &format!(r#"{{"ID":{id}}}"#), members).await.map(|_| ())
}

/// Remove `node`.
pub(super) async fn remove(node: usize, members: &[NodeEnv]) -> Result<(), MemberError> {
    let id = member_id(node, members).await?;
    change("/v3/cluster/member/remove", &format!(r#"{{"ID":{id}}}"#), members).await.map(|_| ())
}

/// Hand leadership to `node`: etcd's MoveLeader, which only the leader
/// takes (the leader is asked first).
pub(super) async fn transfer(node: usize, members: &[NodeEnv]) -> Result<(), MemberError> {
    let id = member_id(node, members).await?;
    change("/v3/maintenance/transfer-leadership", &format!(r#"{{"targetID":{id}}}"#), members).await.map(|_| ())
}

/// The membership in the leader's member list; without a leader that
/// answers, the one most answering members list.
pub(super) async fn reported(members: &[NodeEnv]) -> Option<Members> {
    let surveys = survey(members, true).await;
    let peers = peer_urls(members);
    let leader = leader_node(&surveys);
    let lists: Vec<(usize, Members)> = surveys
        .iter()
        .filter_map(|survey| Some((survey.node, parse_members(survey.list.as_ref()?, &peers)?)))
        .collect();
    if let Some((_, members)) = lists.iter().find(|(node, _)| Some(*node) == leader) {
        return Some(members.clone());
    }
    let views: Vec<(Vec<usize>, Vec<usize>)> =
        lists.into_iter().map(|(_, members)| (members.voters, members.learners)).collect();
    majority(&views).map(|(voters, learners)| Members { voters, learners })
}

/// Send one change to the members, leader first, until one answers it or
/// refuses it; `Retry` when none did.
async fn change(path: &str, body: &str, members: &[NodeEnv]) -> Result<Value, MemberError> {
    let ordered = leader_first(members).await;
    let deadline = Instant::now() + Duration::from_millis(CHANGE_TOTAL_MS_MAX);
    let mut last = MemberError::Retry("no running member to ask".into());
    for env in ordered {
        let left_ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
        if left_ms == 0 {
            break;
        }
        let name = node_name(env.node);
        match post(env.client_listen, path, body, left_ms.min(CHANGE_TIMEOUT_MS)).await {
            Answer::Done(reply) => return Ok(reply),
            Answer::Lost(why) => last = MemberError::Retry(format!("{name}: {why}")),
            Answer::Failed { message, code } => match fate(&message, code) {
                Fate::Elsewhere => last = MemberError::Retry(format!("{name}: {message}")),
                Fate::Retry => return Err(MemberError::Retry(format!("{name}: {message}"))),
                Fate::Refused => return Err(MemberError::Refused(format!("{name}: {message}"))),
            },
        }
    }
    Err(last)
}

/// `node`'s member ID, from the first member list a member gives.
async fn member_id(node: usize, members: &[NodeEnv]) -> Result<u64, MemberError> {
    let peers = peer_urls(members);
    let mut last = MemberError::Retry("no running member to ask".into());
    for env in leader_first(members).await {
        let name = node_name(env.node);
        match post(env.client_listen, "/v3/cluster/member/list", "{}", LIST_TIMEOUT_MS).await {
            Answer::Done(list) => {
                return find_id(&list, node, &peers)
                    .ok_or_else(|| MemberError::Refused(format!("{name}'s member list has no {}", node_name(node))))
            }
            Answer::Lost(why) => last = MemberError::Retry(format!("{name}: {why}")),
            Answer::Failed { message, code } => match fate(&message, code) {
                Fate::Refused => return Err(MemberError::Refused(format!("{name}: {message}"))),
                Fate::Elsewhere | Fate::Retry => last = MemberError::Retry(format!("{name}: {message}")),
            },
        }
    }
    Err(last)
}

/// One bounded POST to a member, its answer sorted.
async fn post(addr: SocketAddr, path: &str, body: &str, timeout_ms: u64) -> Answer {
    let exchange = async {
        let mut connection = HttpConnection::new(addr, CONNECT_TIMEOUT_MS);
        connection.request(path, Some(body.as_bytes())).await
    };
    let response = match tokio::time::timeout(Duration::from_millis(timeout_ms), exchange).await {
        Err(_) => return Answer::Lost(format!("no answer within {timeout_ms} ms")),
        Ok(Err(error)) => return Answer::Lost(error.to_string()),
        Ok(Ok(response)) => response,
    };
    sort_answer(response.status, &response.body)
}

fn sort_answer(status: u16, body: &[u8]) -> Answer {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    match (status, value) {
        (200, Some(value)) => Answer::Done(value),
        (_, Some(value)) => {
            let message = value["message"].as_str().or(value["error"].as_str()).unwrap_or("").to_string();
            Answer::Failed { message, code: value["code"].as_i64() }
        }
        (_, None) => Answer::Failed {
            message: format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])),
            code: None,
        },
    }
}

/// What one member said about itself, its leader and (if asked) the
/// membership.
pub(super) struct Survey {
    node: usize,
    member_id: Option<String>,
    leader: Option<String>,
    list: Option<Value>,
}

/// Ask every member at once for its status (and its member list).
pub(super) async fn survey(members: &[NodeEnv], with_list: bool) -> Vec<Survey> {
    let mut probes = tokio::task::JoinSet::new();
    for env in members {
        let (node, addr) = (env.node, env.client_listen);
        probes.spawn(async move {
            let status = probe(addr, "/v3/maintenance/status", Some(b"{}")).await;
            let list = match with_list {
                true => match post(addr, "/v3/cluster/member/list", "{}", LIST_TIMEOUT_MS).await {
                    Answer::Done(list) => Some(list),
                    _ => None,
                },
                false => None,
            };
            let member_id = status.as_ref().and_then(|status| status["header"]["member_id"].as_str());
            let leader = status.as_ref().and_then(|status| status["leader"].as_str());
            Survey { node, member_id: member_id.map(str::to_string), leader: leader.map(str::to_string), list }
        });
    }
    let mut surveys = Vec::with_capacity(members.len());
    while let Some(survey) = probes.join_next().await {
        surveys.extend(survey.ok());
    }
    surveys
}

/// The node most surveyed members name as leader.
pub(super) fn leader_node(surveys: &[Survey]) -> Option<usize> {
    let leaders: Vec<String> = surveys.iter().filter_map(|survey| survey.leader.clone()).collect();
    let leader = majority(&leaders)?;
    surveys.iter().find(|survey| survey.member_id.as_deref() == Some(leader.as_str())).map(|survey| survey.node)
}

/// `members` with the one most of them name as leader first, the others
/// in their order.
async fn leader_first(members: &[NodeEnv]) -> Vec<&NodeEnv> {
    let leader = leader_node(&survey(members, false).await);
    let mut ordered: Vec<&NodeEnv> = members.iter().collect();
    ordered.sort_by_key(|env| Some(env.node) != leader);
    ordered
}

/// Every slot's shared proxied peer address, from the members' views.
fn peer_urls(members: &[NodeEnv]) -> Vec<(usize, SocketAddr)> {
    let mut peers: Vec<(usize, SocketAddr)> = members.iter().flat_map(|env| env.peer_dial.iter().copied()).collect();
    peers.sort_unstable();
    peers.dedup();
    peers
}

/// The node a listed member is: by its name `n{node}`, else by its first
/// peer URL (a member added but not started has no name yet).
fn node_of(member: &Value, peers: &[(usize, SocketAddr)]) -> Option<usize> {
    let named = member["name"].as_str().and_then(|name| name.strip_prefix('n')?.parse().ok());
    named.or_else(|| {
        let url = member["peerURLs"].as_array()?.first()?.as_str()?;
        let addr: SocketAddr = url.strip_prefix("http://")?.trim_end_matches('/').parse().ok()?;
        peers.iter().find(|(_, peer)| *peer == addr).map(|(node, _)| *node)
    })
}

/// Voters and learners of a `member/list` answer, as sorted node indices;
/// members that map to no node are left out.
fn parse_members(list: &Value, peers: &[(usize, SocketAddr)]) -> Option<Members> {
    let mut members = Members::default();
    for member in list["members"].as_array()? {
        let Some(node) = node_of(member, peers) else { continue };
        match member["isLearner"].as_bool() == Some(true) {
            true => members.learners.push(node),
            false => members.voters.push(node),
        }
    }
    members.voters.sort_unstable();
    members.learners.sort_unstable();
    Some(members)
}

/// `node`'s member ID in a `member/list` answer (a JSON string from the
/// gateway; a number is accepted too).
fn find_id(list: &Value, node: usize, peers: &[(usize, SocketAddr)]) -> Option<u64> {
    let member = list["members"].as_array()?.iter().find(|member| node_of(member, peers) == Some(node))?;
    match &member["ID"] {
        Value::String(id) => id.parse().ok(),
        id => id.as_u64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// etcd 3.4.23's answer right after `member/add` of a learner on
    /// 127.0.0.1:23803, before it started: the learner has no name.
    const LIST_WITH_NEW_LEARNER: &str = r#"{"header":{"cluster_id":"2699976051590606275","member_id":"17380448361808351625","raft_term":"2"},"members":[{"ID":"1819421389769337888","name":"n2","peerURLs":["http://127.0.0.1:23802"],"clientURLs":["http://127.0.0.1:23792"]},{"ID":"16365955739886761472","name":"n1","peerURLs":["http://127.0.0.1:23801"],"clientURLs":["http://127.0.0.1:23791"]},{"ID":"16512262400297777252","peerURLs":["http://127.0.0.1:23803"],"isLearner":true},{"ID":"17380448361808351625","name":"n0","peerURLs":["http://127.0.0.1:23800"],"clientURLs":["http://127.0.0.1:23790"]}]}"#;

    /// The same cluster later: n3 promoted, n0 removed and added back as
    /// a learner that started (it has its name).
    const LIST_WITH_STARTED_LEARNER: &str = r#"{"header":{"cluster_id":"2699976051590606275","member_id":"16365955739886761472","raft_term":"2"},"members":[{"ID":"1819421389769337888","name":"n2","peerURLs":["http://127.0.0.1:23802"],"clientURLs":["http://127.0.0.1:23792"]},{"ID":"8898850890611815382","name":"n0","peerURLs":["http://127.0.0.1:23800"],"clientURLs":["http://127.0.0.1:23790"],"isLearner":true},{"ID":"16365955739886761472","name":"n1","peerURLs":["http://127.0.0.1:23801"],"clientURLs":["http://127.0.0.1:23791"]},{"ID":"16512262400297777252","name":"n3","peerURLs":["http://127.0.0.1:23803"],"clientURLs":["http://127.0.0.1:23793"]}]}"#;

    fn peers() -> Vec<(usize, SocketAddr)> {
        (0..4).map(|node| (node, format!("127.0.0.1:2380{node}").parse().unwrap())).collect()
    }

    #[test]
    fn a_learner_without_a_name_is_found_by_its_peer_url() {
        let list: Value = serde_json::from_str(LIST_WITH_NEW_LEARNER).unwrap();
        let members = parse_members(&list, &peers()).unwrap();
        assert_eq!(members, Members { voters: vec![0, 1, 2], learners: vec![3] });
        assert_eq!(find_id(&list, 3, &peers()), Some(16512262400297777252));
        assert_eq!(find_id(&list, 0, &peers()), Some(17380448361808351625));
        // Without a route for it, the nameless learner maps to no node.
        let known: Vec<_> = peers().into_iter().take(3).collect();
        assert_eq!(parse_members(&list, &known).unwrap().learners, Vec::<usize>::new());
        assert_eq!(find_id(&list, 3, &known), None);
    }

    #[test]
    fn a_started_learner_is_found_by_its_name() {
        let list: Value = serde_json::from_str(LIST_WITH_STARTED_LEARNER).unwrap();
        let members = parse_members(&list, &[]).unwrap();
        assert_eq!(members, Members { voters: vec![1, 2, 3], learners: vec![0] });
        assert_eq!(find_id(&list, 0, &[]), Some(8898850890611815382));
        assert_eq!(find_id(&list, 4, &peers()), None);
        assert_eq!(parse_members(&serde_json::json!({"error": "x"}), &peers()), None);
    }

    /// The error answers etcd 3.4.23's gateway gave, verbatim.
    #[test]
    fn etcd_errors_are_sorted_into_retry_elsewhere_and_refused() {
        let cases = [
            (r#"{"error":"etcdserver: can only promote a learner member which is in sync with leader","message":"etcdserver: can only promote a learner member which is in sync with leader","code":9}"#, Fate::Retry),
            (r#"{"error":"etcdserver: too many learner members in cluster","message":"etcdserver: too many learner members in cluster","code":9}"#, Fate::Retry),
            (r#"{"error":"etcdserver: unhealthy cluster","message":"etcdserver: unhealthy cluster","code":14}"#, Fate::Retry),
            (r#"{"error":"etcdserver: rpc not supported for learner","message":"etcdserver: rpc not supported for learner","code":14}"#, Fate::Elsewhere),
            (r#"{"error":"etcdserver: can only promote a learner member","message":"etcdserver: can only promote a learner member","code":9}"#, Fate::Refused),
            (r#"{"error":"etcdserver: member not found","message":"etcdserver: member not found","code":5}"#, Fate::Refused),
            (r#"{"error":"etcdserver: member ID already exist","message":"etcdserver: member ID already exist","code":9}"#, Fate::Refused),
            (r#"{"error":"etcdserver: Peer URLs already exists","message":"etcdserver: Peer URLs already exists","code":9}"#, Fate::Refused),
        ];
        for (body, expected) in cases {
            let Answer::Failed { message, code } = sort_answer(400, body.as_bytes()) else { panic!("{body}") };
            assert_eq!(fate(&message, code), expected, "{message}");
        }
        // etcd's messages for a timeout or a lost leader, not provoked here.
        assert_eq!(fate("etcdserver: request timed out", Some(4)), Fate::Retry);
        assert_eq!(fate("etcdserver: leader changed", None), Fate::Retry);
        assert_eq!(fate("etcdserver: no leader", Some(14)), Fate::Elsewhere);
        assert_eq!(fate("something new", Some(14)), Fate::Retry);
        assert!(matches!(sort_answer(502, b"Bad Gateway"), Answer::Failed { code: None, .. }));
        assert_eq!(sort_answer(200, b"{}"), Answer::Done(serde_json::json!({})));
    }
}
