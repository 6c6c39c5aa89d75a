//! Set-full durability of unique elements (set adds, list appends): every
//! acknowledged element must be in the reads that follow it.
use faultline_checkers::durability::{check_op_durability, DurabilityConfig};
use faultline_checkers::{OpHistory, Verdict};

use super::{Check, CheckDetails, Checker};

pub struct Durability;

impl Checker for Durability {
    fn name(&self) -> String {
        "durability".to_string()
    }

    fn check(&self, history: &OpHistory) -> Check {
        let result = check_op_durability(history, &DurabilityConfig::default());
        let reason = (result.verdict != Verdict::Valid).then(|| {
            let counts = &result.counts;
            format!(
                "durability: {} lost, {} stale, {} unexpected of {} acknowledged",
                counts.lost, counts.stale, counts.unexpected, counts.acknowledged
            )
        });
        Check { name: self.name(), verdict: result.verdict, reason, details: CheckDetails::Durability(result) }
    }
}
