//! Liveness after the final heal: the cluster must serve a write again
//! within `liveness_timeout_ms`, or the run is invalid.
use faultline_checkers::Verdict;
use serde::{Deserialize, Serialize};

use super::{Check, CheckDetails};
use crate::fields::human_ms;

/// What the probe after the final heal saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Liveness {
    pub timeout_ms: u64,
    /// Time from the end of the heal to the first successful write.
    pub recovered_after_ms: Option<u64>,
    pub attempts: u64,
    pub last_error: Option<String>,
}

impl Liveness {
    pub fn check(&self) -> Check {
        let (verdict, reason) = match self.recovered_after_ms {
            Some(_) => (Verdict::Valid, None),
            None => (
                Verdict::Invalid,
                Some(format!(
                    "no successful write in {} after heal ({} attempts, last error: {})",
                    human_ms(self.timeout_ms),
                    self.attempts,
                    self.last_error.as_deref().unwrap_or("none")
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
        let dead = Liveness { timeout_ms: 10_000, recovered_after_ms: None, attempts: 40, last_error: Some("timeout".into()) };
        let check = dead.check();
        assert_eq!(check.verdict, Verdict::Invalid);
        let reason = check.reason.unwrap();
        assert!(reason.starts_with("no successful write in 10s after heal (40 attempts, last error: timeout)"), "{reason}");
        let alive = Liveness { recovered_after_ms: Some(120), ..dead };
        assert_eq!(alive.check().verdict, Verdict::Valid);
    }
}
