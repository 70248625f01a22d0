//! Verdicts: valid, invalid with the evidence that proves it, or unknown with a reason.

use serde::{Deserialize, Serialize};

/// The judgement of one invariant over one run. Ordered from best to worst.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    Valid,
    /// Unknown: the checker lacked evidence to decide, and says why.
    Unknown {
        reason: String,
    },
    /// Invalid: the op ids and database rows that prove the violation.
    Invalid {
        ops: Vec<u64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rows: Vec<String>,
    },
}

impl Verdict {
    fn rank(&self) -> u8 {
        match self {
            Verdict::Valid => 0,
            Verdict::Unknown { .. } => 1,
            Verdict::Invalid { .. } => 2,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Unknown { .. } => "unknown",
            Verdict::Invalid { .. } => "invalid",
        }
    }

    /// An unknown verdict, with its reason also as the result's detail sentence.
    pub fn unknown(reason: impl Into<String>) -> (Verdict, String) {
        let reason = reason.into();
        (
            Verdict::Unknown {
                reason: reason.clone(),
            },
            reason,
        )
    }

    /// The worse of two verdicts: invalid beats unknown beats valid.
    pub fn worst(self, other: Verdict) -> Verdict {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

/// A checker's result: the verdict plus a sentence a person can read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub invariant: String,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub detail: String,
}

impl CheckResult {
    pub fn new(invariant: &str, (verdict, detail): (Verdict, String)) -> CheckResult {
        CheckResult {
            invariant: invariant.to_string(),
            verdict,
            detail,
        }
    }

    /// The worst verdict over a set of results; valid when there are none.
    pub fn overall(results: &[CheckResult]) -> Verdict {
        results
            .iter()
            .fold(Verdict::Valid, |acc, r| acc.worst(r.verdict.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_beats_unknown_beats_valid() {
        let u = Verdict::Unknown { reason: "r".into() };
        let i = Verdict::Invalid {
            ops: vec![1],
            rows: vec![],
        };
        assert_eq!(Verdict::Valid.worst(u.clone()), u);
        assert_eq!(u.clone().worst(i.clone()), i);
        assert_eq!(i.clone().worst(Verdict::Valid), i);
        assert_eq!(CheckResult::overall(&[]), Verdict::Valid);
    }
}
