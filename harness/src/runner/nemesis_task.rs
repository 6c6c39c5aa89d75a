//! The nemesis task: follows the seeded schedule (quiet, fault, heal, ...)
//! until the end of the main phase, recording every action in the history
//! as process `nemesis` with an invoke and a completion.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_checkers::EventType;
use serde_json::json;

use super::history::{nemesis_event, Recorder};
use crate::cluster::Cluster;
use crate::nemesis::{Fault, Mix, Nemesis, Schedule};

/// The nemesis state the progress display shows (`healthy`, `kill-leader`).
pub type NemesisState = Arc<Mutex<String>>;

/// Longest single sleep, so an interrupt is noticed promptly.
const SLEEP_SLICE_MS: u64 = 100;

pub fn set_state(state: &NemesisState, text: &str) {
    let mut guard = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    guard.clear();
    guard.push_str(text);
}

/// Sleep until `until` or `end`, whichever is first; false if stopped.
async fn sleep_until(until: Instant, end: Instant, stop: &AtomicBool) -> bool {
    let until = until.min(end);
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let slice = (until - Instant::now()).min(Duration::from_millis(SLEEP_SLICE_MS));
        tokio::time::sleep(slice).await;
    }
    !stop.load(Ordering::Relaxed)
}

pub struct NemesisRun<'a> {
    pub mix: &'a mut Mix,
    pub cluster: &'a Cluster,
    pub recorder: &'a Recorder,
    pub state: NemesisState,
    pub stop: &'a AtomicBool,
}

impl NemesisRun<'_> {
    /// Follow `schedule` until `end`; leaves the last fault healed.
    pub async fn run(&mut self, schedule: &mut Schedule, end: Instant) {
        // Each pass sleeps at least the (positive) quiet time, so the loop
        // ends by `end`.
        while let Some(step) = schedule.next_step() {
            if !sleep_until(Instant::now() + Duration::from_millis(step.quiet_ms), end, self.stop).await {
                return;
            }
            if Instant::now() >= end {
                return;
            }
            self.inject(step.fault).await;
            let held = sleep_until(Instant::now() + Duration::from_millis(step.fault_ms), end, self.stop).await;
            self.heal(false).await;
            if !held {
                return;
            }
        }
        sleep_until(end, end, self.stop).await;
    }

    async fn inject(&mut self, fault: Fault) {
        set_state(&self.state, fault.name());
        self.recorder.record(nemesis_event(EventType::Invoke, fault.name(), json!(null))).await;
        let completion = match self.mix.invoke(fault, self.cluster).await {
            Ok(effect) => nemesis_event(EventType::Ok, fault.name(), effect),
            Err(error) => {
                let mut event = nemesis_event(EventType::Info, fault.name(), json!(null));
                event.error = Some(error.to_string());
                event
            }
        };
        self.recorder.record(completion).await;
    }

    /// Undo every fault in force; `last` marks the final heal of the test.
    pub async fn heal(&mut self, last: bool) {
        let f = if last { "final-heal" } else { "heal" };
        self.recorder.record(nemesis_event(EventType::Invoke, f, json!(null))).await;
        let completion = match self.mix.heal(self.cluster).await {
            Ok(effect) => nemesis_event(EventType::Ok, f, effect),
            Err(error) => {
                let mut event = nemesis_event(EventType::Info, f, json!(null));
                event.error = Some(error.to_string());
                event
            }
        };
        self.recorder.record(completion).await;
        set_state(&self.state, "healthy");
    }
}
