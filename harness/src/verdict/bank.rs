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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_wrong_total_is_invalid_named_and_reads_back_from_json() {
        let config = BankConfig { accounts: 2, total: 20, negative_allowed: false };
        let read = |line, balances: [i64; 2]| BankRead { line, time_ns: 0, node: None, balances: BTreeMap::from([(0, balances[0]), (1, balances[1])]) };
        let check = check(&[read(4, [10, 10]), read(9, [13, 10])], config);
        assert_eq!(check.verdict, Verdict::Invalid);
        let reason = check.reason.clone().unwrap();
        assert!(reason.starts_with("bank: 1 of 2 reads wrong; the read on line 9") && reason.contains("add up to 23, not 20"), "{reason}");
        let json = serde_json::to_string(&check).unwrap();
        assert_eq!(serde_json::from_str::<Check>(&json).unwrap(), check);
        assert_eq!(super::check(&[], config).verdict, Verdict::Unknown);
    }
}
