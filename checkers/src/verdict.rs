//! Three-valued verdicts and how several checkers' verdicts merge.
use serde::{Deserialize, Serialize};

/// A checker's answer. Running out of budget is `Unknown`, never `Valid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Valid,
    Invalid,
    Unknown,
}

impl Verdict {
    /// `invalid` beats `unknown` beats `valid`.
    pub fn merge(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Invalid, _) | (_, Verdict::Invalid) => Verdict::Invalid,
            (Verdict::Unknown, _) | (_, Verdict::Unknown) => Verdict::Unknown,
            _ => Verdict::Valid,
        }
    }

    /// The merge of many verdicts; `Valid` when there are none.
    pub fn merge_all(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        verdicts.into_iter().fold(Verdict::Valid, Verdict::merge)
    }

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
        }
    }
}

/// One named checker's result inside a [`Composed`] result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Named {
    pub name: String,
    pub verdict: Verdict,
    /// The checker's full result.
    pub details: serde_json::Value,
}

/// Several checkers' results and their merged verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Composed {
    pub verdict: Verdict,
    pub checkers: Vec<Named>,
}

/// Merges named results. A checker that could not produce a result (it
/// errored or panicked) should be passed in as `Unknown`, as Jepsen's
/// `check-safe` does.
pub fn compose(checkers: Vec<Named>) -> Composed {
    let verdict = Verdict::merge_all(checkers.iter().map(|c| c.verdict));
    Composed { verdict, checkers }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_beats_unknown_beats_valid() {
        use Verdict::*;
        assert_eq!(Valid.merge(Valid), Valid);
        assert_eq!(Valid.merge(Unknown), Unknown);
        assert_eq!(Unknown.merge(Valid), Unknown);
        assert_eq!(Unknown.merge(Invalid), Invalid);
        assert_eq!(Invalid.merge(Valid), Invalid);
        assert_eq!(Verdict::merge_all([]), Valid);
        assert_eq!(Verdict::merge_all([Valid, Unknown, Valid]), Unknown);
    }

    #[test]
    fn compose_merges_and_keeps_details() {
        let named = |name: &str, verdict| Named {
            name: name.to_string(),
            verdict,
            details: serde_json::json!({"n": 1}),
        };
        let composed = compose(vec![named("a", Verdict::Valid), named("b", Verdict::Unknown)]);
        assert_eq!(composed.verdict, Verdict::Unknown);
        assert_eq!(composed.checkers.len(), 2);
        let json = serde_json::to_value(&composed).unwrap();
        assert_eq!(json["verdict"], "unknown");
        assert_eq!(json["checkers"][1]["name"], "b");
    }
}
