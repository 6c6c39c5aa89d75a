//! Liveness after the final heal: the cluster must serve a write again
//! within `liveness_timeout_ms`, or the run is invalid.
use faultline_checkers::{Named, Verdict};
use serde::Serialize;
use serde_json::json;

/// What the probe after the final heal saw.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Liveness {
    pub timeout_ms: u64,
    /// Time from the end of the heal to the first successful write.
    pub recovered_after_ms: Option<u64>,
    pub attempts: u64,
    pub last_error: Option<String>,
}

impl Liveness {
    pub fn named(&self) -> Named {
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
        Named {
            name: "liveness".to_string(),
            verdict,
            details: json!({
                "timeout_ms": self.timeout_ms,
                "recovered_after_ms": self.recovered_after_ms,
                "attempts": self.attempts,
                "reason": reason,
            }),
        }
    }
}

/// `10 s` for whole seconds, else `1500 ms`.
pub fn human_ms(ms: u64) -> String {
    if ms % 1_000 == 0 {
        format!("{} s", ms / 1_000)
    } else {
        format!("{ms} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_recovery_is_invalid_with_the_reason_the_issue_names() {
        let dead = Liveness { timeout_ms: 10_000, recovered_after_ms: None, attempts: 40, last_error: Some("timeout".into()) };
        let named = dead.named();
        assert_eq!(named.verdict, Verdict::Invalid);
        let reason = named.details["reason"].as_str().unwrap();
        assert!(reason.starts_with("no successful write in 10 s after heal"), "{reason}");
        let alive = Liveness { recovered_after_ms: Some(120), ..dead };
        assert_eq!(alive.named().verdict, Verdict::Valid);
    }
}
