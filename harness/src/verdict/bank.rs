//! The bank check: every committed read of the balances adds up to the
//! money the bank started with, and none is below zero.
use faultline_checkers::bank::{check_bank, BankConfig, BankRead, BankReport};
use faultline_checkers::Verdict;

use super::{Check, CheckDetails};

pub const NAME: &str = "bank";

pub fn check(reads: &[BankRead], config: BankConfig) -> Check {
    to_check(check_bank(reads, config))
}

/// The check of a bank report: its reason names the first wrong read.
pub fn to_check(report: BankReport) -> Check {
    let reason = match (report.verdict, report.bad.first()) {
        (Verdict::Valid, _) => None,
        (Verdict::Unknown, _) => Some(format!("{NAME}: no read of the balances completed")),
        (Verdict::Invalid, Some(first)) => {
            Some(format!("{NAME}: {} of {} reads wrong; {}", report.bad_count, report.reads, first.explanation))
        }
        (Verdict::Invalid, None) => Some(format!("{NAME}: {} of {} reads wrong", report.bad_count, report.reads)),
    };
    Check { name: NAME.to_string(), verdict: report.verdict, reason, details: CheckDetails::Bank(report) }
}
