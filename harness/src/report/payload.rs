//! The data the page's script draws, bounded whatever the history's size:
//! at most [`TIMELINE_OPS_MAX`] operations on the timeline (a window around
//! the counterexample, or the start, plus every highlighted operation), at
//! most [`LATENCY_POINTS_MAX`] latency points (every n-th operation plus the
//! highlighted ones), and [`THROUGHPUT_BUCKETS`] throughput buckets over the
//! whole run. A million operations give a page of a few megabytes.
use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};

use super::timeline::{OpRow, Outcome, Timeline};
use super::explain::{Finding, Role};

pub const TIMELINE_OPS_MAX: usize = 20_000;
pub const LATENCY_POINTS_MAX: usize = 20_000;
pub const THROUGHPUT_BUCKETS: usize = 400;

pub struct Payload {
    pub data: Value,
    pub timeline_ops: u64,
    pub latency_points: u64,
}

pub fn build(timeline: &Timeline, findings: &[Finding]) -> Payload {
    let roles = roles_by_op(timeline, findings);
    let highlighted: BTreeSet<usize> = roles.keys().copied().collect();
    let shown = timeline_indices(timeline.ops.len(), &highlighted);
    let sampled = latency_indices(timeline, &highlighted);
    let end_ms = timeline.ms(timeline.last_ns);
    let mut processes: Vec<u64> = shown.iter().map(|&i| timeline.ops[i].process).collect();
    processes.sort_unstable();
    processes.dedup();
    let lane: HashMap<u64, usize> = processes.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let rows: Vec<Value> = shown.iter().map(|&i| timeline_row(timeline, i, lane[&timeline.ops[i].process], &roles)).collect();
    let latency: Vec<Value> = sampled.iter().filter_map(|&i| latency_point(timeline, &timeline.ops[i])).collect();
    let focus = focus_ms(timeline, &highlighted);
    let data = json!({
        "end_ms": round(end_ms),
        "op_count": timeline.ops.len(),
        "processes": processes,
        "keys": timeline.keys,
        "fs": timeline.fs,
        "timeline": rows,
        "timeline_total": timeline.ops.len(),
        "latency": latency,
        "throughput": throughput(timeline, end_ms),
        "spans": timeline.spans.iter().map(|s| json!([s.name, round(timeline.ms(s.start_ns)), round(timeline.ms(s.end_ns))])).collect::<Vec<_>>(),
        "membership": timeline.membership.iter().map(|m| json!([round(timeline.ms(m.at_ns)), m.members, m.learners])).collect::<Vec<_>>(),
        "clocks": timeline.clocks.iter().map(|m| json!([round(timeline.ms(m.at_ns)), m.node, m.offset_ms, m.label])).collect::<Vec<_>>(),
        "focus": focus,
        // The wall-clock time of the timeline's 0, for the tooltip.
        "wall_start_ms": timeline.start_unix_ns.map(|ns| (ns + timeline.first_ns) / 1_000_000),
    });
    Payload { data, timeline_ops: shown.len() as u64, latency_points: latency.len() as u64 }
}

/// The strongest role of each highlighted operation, by op index.
fn roles_by_op(timeline: &Timeline, findings: &[Finding]) -> HashMap<usize, Role> {
    let mut roles = HashMap::new();
    for mark in findings.iter().flat_map(|f| &f.marks) {
        let Some(index) = timeline.index_of_line(mark.line) else { continue };
        let entry = roles.entry(index).or_insert(mark.role);
        if rank(mark.role) > rank(*entry) {
            *entry = mark.role;
        }
    }
    roles
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Prefix | Role::Witness => 0,
        Role::Concurrent => 1,
        Role::Lost | Role::Cycle => 2,
        Role::Stuck => 3,
    }
}

/// A contiguous window (by invocation order) around the first highlighted
/// operation, plus every highlighted one.
fn timeline_indices(op_count: usize, highlighted: &BTreeSet<usize>) -> Vec<usize> {
    let center = highlighted.iter().next().copied().unwrap_or(0);
    let half = TIMELINE_OPS_MAX / 2;
    let start = if op_count <= TIMELINE_OPS_MAX { 0 } else { center.saturating_sub(half).min(op_count - TIMELINE_OPS_MAX) };
    let end = (start + TIMELINE_OPS_MAX).min(op_count);
    let mut shown: BTreeSet<usize> = (start..end).collect();
    shown.extend(highlighted.iter().take(TIMELINE_OPS_MAX));
    shown.into_iter().collect()
}

/// Every n-th completed operation, so the sample spans the whole run.
fn latency_indices(timeline: &Timeline, highlighted: &BTreeSet<usize>) -> Vec<usize> {
    let stride = timeline.ops.len().div_ceil(LATENCY_POINTS_MAX).max(1);
    let mut picked: BTreeSet<usize> = (0..timeline.ops.len()).step_by(stride).collect();
    picked.extend(highlighted.iter().take(LATENCY_POINTS_MAX / 10));
    picked.into_iter().collect()
}

/// `[lane, start_ms, end_ms|null, outcome, key, line, text, role|null]`.
fn timeline_row(timeline: &Timeline, index: usize, lane: usize, roles: &HashMap<usize, Role>) -> Value {
    let op = &timeline.ops[index];
    let end = op.return_ns.map(|ns| round(timeline.ms(ns)));
    let role = roles.get(&index).map(|r| r.name());
    json!([lane, round(timeline.ms(op.call_ns)), end, op.outcome.code(), op.key, op.line, op.text, role])
}

/// `[complete_ms, latency_ms, outcome]` for a completed operation.
fn latency_point(timeline: &Timeline, op: &OpRow) -> Option<Value> {
    let end = op.return_ns?;
    let latency = end.saturating_sub(op.call_ns) as f64 / 1e6;
    Some(json!([round(timeline.ms(end)), round(latency), op.outcome.code()]))
}

/// Completions per second in equal buckets: `{bucket_ms, ok, fail, info}`.
fn throughput(timeline: &Timeline, end_ms: f64) -> Value {
    let bucket_ms = (end_ms / THROUGHPUT_BUCKETS as f64).max(0.001);
    let buckets = ((end_ms / bucket_ms).ceil() as usize + 1).min(THROUGHPUT_BUCKETS + 1);
    let mut counts = vec![[0u64; 3]; buckets];
    for op in &timeline.ops {
        let Some(end) = op.return_ns else { continue };
        let slot = ((timeline.ms(end) / bucket_ms) as usize).min(buckets - 1);
        let column = match op.outcome {
            Outcome::Ok => 0,
            Outcome::Fail => 1,
            Outcome::Info | Outcome::Open => 2,
        };
        counts[slot][column] += 1;
    }
    let per_second = 1000.0 / bucket_ms;
    let series = |column: usize| counts.iter().map(|c| round(c[column] as f64 * per_second)).collect::<Vec<_>>();
    json!({ "bucket_ms": round(bucket_ms), "ok": series(0), "fail": series(1), "info": series(2) })
}

/// The time range the timeline opens on: the highlighted operations.
fn focus_ms(timeline: &Timeline, highlighted: &BTreeSet<usize>) -> Value {
    if highlighted.is_empty() {
        return Value::Null;
    }
    let ops = highlighted.iter().map(|&i| &timeline.ops[i]);
    let start = ops.clone().map(|op| op.call_ns).min().unwrap_or(0);
    let end = ops.map(|op| op.return_ns.unwrap_or(timeline.last_ns)).max().unwrap_or(0);
    json!([round(timeline.ms(start)), round(timeline.ms(end))])
}

/// Three decimals of a millisecond: enough to draw, short to embed.
fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_stay_bounded_and_keep_highlights() {
        let highlighted: BTreeSet<usize> = [5, 90_000].into_iter().collect();
        let shown = timeline_indices(100_000, &highlighted);
        assert!(shown.len() <= TIMELINE_OPS_MAX + highlighted.len());
        assert!(shown.contains(&5) && shown.contains(&90_000));
        assert_eq!(timeline_indices(10, &BTreeSet::new()), (0..10).collect::<Vec<_>>());
    }
}
