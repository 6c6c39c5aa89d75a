//! Liveness after the final heal: the cluster must serve a write again
//! within `liveness_timeout_ms`, or the run is invalid.
use faultline_checkers::Verdict;
use serde::{Deserialize, Serialize};

use super::{Check, CheckDetails};
use crate::fields::human_ms;

/// Distinct error messages counted; others add to `errors_other`.
const ERRORS_KEPT_MAX: usize = 16;
/// Most common errors the reason names.
const ERRORS_SHOWN_MAX: usize = 3;

/// What the probe after the final heal saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Liveness {
    pub timeout_ms: u64,
    /// Time from the end of the heal to the first successful write.
    pub recovered_after_ms: Option<u64>,
    pub attempts: u64,
    /// Attempts by how they ended, the successful one aside.
    pub failed: u64,
    pub indeterminate: u64,
    pub timed_out: u64,
    /// Error messages and how often each came, most common first.
    pub errors: Vec<(String, u64)>,
    /// Attempts whose message was not kept (more than 16 distinct ones).
    pub errors_other: u64,
}

/// How one probe attempt that did not succeed ended.
pub enum Miss {
    Fail(String),
    Info(String),
    Timeout,
}

impl Liveness {
    pub fn new(timeout_ms: u64) -> Liveness {
        Liveness { timeout_ms, ..Liveness::default() }
    }

    /// Counts an attempt that did not succeed.
    pub fn missed(&mut self, miss: Miss) {
        let message = match miss {
            Miss::Fail(message) => {
                self.failed += 1;
                message
            }
            Miss::Info(message) => {
                self.indeterminate += 1;
                message
            }
            Miss::Timeout => {
                self.timed_out += 1;
                "timeout".to_string()
            }
        };
        let kept = self.errors.len();
        match self.errors.iter_mut().find(|(known, _)| *known == message) {
            Some((_, count)) => *count += 1,
            None if kept < ERRORS_KEPT_MAX => self.errors.push((message, 1)),
            None => self.errors_other += 1,
        }
        self.errors.sort_by_key(|error| std::cmp::Reverse(error.1));
    }

    /// `111 fail, 1 timeout; most common: "refused" ×100, ...`.
    fn outcomes(&self) -> String {
        let ends = [("fail", self.failed), ("info", self.indeterminate), ("timeout", self.timed_out)];
        let ends: Vec<String> = ends.iter().filter(|(_, n)| *n > 0).map(|(name, n)| format!("{n} {name}")).collect();
        let common: Vec<String> =
            self.errors.iter().take(ERRORS_SHOWN_MAX).map(|(message, n)| format!("{message:?} ×{n}")).collect();
        match (ends.is_empty(), common.is_empty()) {
            (true, _) => "none answered".to_string(),
            (false, true) => ends.join(", "),
            (false, false) => format!("{}; most common: {}", ends.join(", "), common.join(", ")),
        }
    }

    pub fn check(&self) -> Check {
        let (verdict, reason) = match self.recovered_after_ms {
            Some(_) => (Verdict::Valid, None),
            None => (
                Verdict::Invalid,
                Some(format!(
                    "no successful write in {} after heal ({} attempts: {})",
                    human_ms(self.timeout_ms),
                    self.attempts,
                    self.outcomes()
                )),
            ),
        };
        Check { name: "liveness".to_string(), verdict, reason, details: CheckDetails::Liveness(self.clone()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_recovery_is_invalid_with_the_reason_the_issue_names() {
        let mut dead = Liveness::new(10_000);
        for attempt in 0..112 {
            dead.attempts += 1;
            dead.missed(match attempt {
                0..=99 => Miss::Fail("store is gone".into()),
                100..=110 => Miss::Fail("not_leader".into()),
                _ => Miss::Timeout,
            });
        }
        let check = dead.check();
        assert_eq!(check.verdict, Verdict::Invalid);
        let reason = check.reason.unwrap();
        assert_eq!(
            reason,
            "no successful write in 10s after heal (112 attempts: 111 fail, 1 timeout; most common: \"store is gone\" ×100, \"not_leader\" ×11, \"timeout\" ×1)"
        );
        let alive = Liveness { recovered_after_ms: Some(120), ..dead };
        assert_eq!(alive.check().verdict, Verdict::Valid);
    }
}
