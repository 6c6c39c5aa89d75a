//! The final reads: one read per key by fresh clients after the recovery
//! period, each retried (as a new operation) until it succeeds or has had
//! `attempts_max` tries. Not done while a read is still outstanding, so the
//! interpreter waits for retries instead of stopping early.
use std::collections::{BTreeMap, VecDeque};

use faultline_checkers::{Event, EventType, Process};
use crate::generator::{Context, Generator, Next};
use crate::keyed::final_read;
use crate::WorkloadKind;

pub struct FinalReads {
    kind: WorkloadKind,
    /// The transactions mixed into `kind`, whose keys they read.
    transactions: Option<WorkloadKind>,
    queue: VecDeque<(String, u32)>,
    /// process → (key, attempts so far) of reads in flight.
    outstanding: BTreeMap<u64, (String, u32)>,
    attempts_max: u32,
}

impl FinalReads {
    pub fn new(kind: WorkloadKind, keys: &[String], attempts_max: u32) -> Self {
        assert!(attempts_max > 0, "attempts_max is validated in the spec");
        FinalReads {
            kind,
            transactions: None,
            queue: keys.iter().map(|key| (key.clone(), 0)).collect(),
            outstanding: BTreeMap::new(),
            attempts_max,
        }
    }

    /// Reads the keys of transactions mixed into the workload
    /// (`WorkloadConfig::transactions`) with read-only transactions.
    pub fn with_transactions(self, transactions: Option<WorkloadKind>) -> Self {
        FinalReads { transactions, ..self }
    }

    /// The workload whose read `key` gets: a transaction share's keys are
    /// bare integers, and single-key workloads prefix theirs (`kv-3`).
    fn reader(&self, key: &str) -> WorkloadKind {
        match self.transactions {
            Some(kind) if key.parse::<u64>().is_ok() => kind,
            _ => self.kind,
        }
    }
}

impl Generator for FinalReads {
    fn next(&mut self, ctx: &Context) -> Next {
        if self.outstanding.contains_key(&ctx.process) {
            // This process's previous read has not completed yet.
            return Next::Pending;
        }
        while let Some((key, attempts)) = self.queue.pop_front() {
            // A key no read can be made of is skipped (for transactions, a
            // key that is not an integer: the checker reports its writes).
            if let Some(invocation) = final_read(self.reader(&key), &key) {
                self.outstanding.insert(ctx.process, (key, attempts + 1));
                return Next::Invoke(invocation);
            }
        }
        if self.outstanding.is_empty() {
            Next::Done
        } else {
            Next::Pending
        }
    }

    fn update(&mut self, event: &Event) {
        let Process::Client(process) = event.process else {
            return;
        };
        if event.kind == EventType::Invoke {
            return;
        }
        if let Some((key, attempts)) = self.outstanding.remove(&process) {
            if event.kind != EventType::Ok && attempts < self.attempts_max {
                self.queue.push_back((key, attempts));
            }
        }
    }
}
