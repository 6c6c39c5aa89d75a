//! Set-full durability of unique elements (set adds, list appends): every
//! acknowledged element must be in the reads that follow it.
use faultline_checkers::durability::{check_op_durability, Counts, DurabilityConfig};
use faultline_checkers::DurabilityResult;
use faultline_checkers::{OpHistory, Verdict};

use super::{Check, CheckDetails, Checker};

pub struct Durability;

impl Checker for Durability {
    fn name(&self) -> String {
        "durability".to_string()
    }

    fn check(&self, history: &OpHistory) -> Check {
        let result = check_op_durability(history, &DurabilityConfig::default());
        let reason = match result.verdict {
            Verdict::Valid => None,
            Verdict::Invalid => Some(format!("durability: {}", problems(&result.counts))),
            Verdict::Unknown => Some(format!("durability: {}", unconfirmed(&result))),
        };
        Check { name: self.name(), verdict: result.verdict, reason, details: CheckDetails::Durability(result) }
    }
}

/// What was lost, of what was written: the acknowledged writes and, apart,
/// the writes of unknown outcome a read saw, so no ratio reads as impossible.
pub fn problems(counts: &Counts) -> String {
    let mut text = format!(
        "{} lost, {} stale, {} unexpected of {} acknowledged",
        counts.lost, counts.stale, counts.unexpected, counts.acknowledged
    );
    if counts.seen_indeterminate > 0 {
        text.push_str(&format!(" + {} indeterminate that a read saw", counts.seen_indeterminate));
    }
    text
}

/// Why durability is not shown: acknowledged writes no read confirmed.
pub fn unconfirmed(result: &DurabilityResult) -> String {
    let counts = &result.counts;
    let Some(first) = result.unconfirmed.first() else {
        return format!("nothing was read back ({} acknowledged, {} reads returned)", counts.acknowledged, counts.reads);
    };
    format!(
        "unknown: {} of {} acknowledged writes on {} key(s) were never confirmed by a read (their reads failed or none came after), first key {:?}: {} of {}; {} confirmed",
        counts.never_read,
        counts.acknowledged,
        result.unconfirmed_key_count,
        first.key,
        first.never_read,
        first.acknowledged,
        counts.ok
    )
}
