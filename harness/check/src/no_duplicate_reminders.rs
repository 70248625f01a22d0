//! No duplicate reminders: no (appointment, reminder kind, channel) was delivered twice,
//! judged from the stubs' call logs after the quiesce period (000:C6, 000:S3). A repeat is
//! a fact whatever else is missing or still in flight; no repeat is valid only when both
//! logs were collected.

use chaos_model::{CheckResult, Evidence, History, Verdict};

use crate::view::View;

pub const NAME: &str = "no_duplicate_reminders";

pub fn check_no_duplicate_reminders(history: &History, evidence: &Evidence) -> CheckResult {
    check(&View::new(history, evidence))
}

pub(crate) fn check(v: &View<'_>) -> CheckResult {
    let Some(delivered) = v.deliveries() else {
        return CheckResult::new(
            NAME,
            Verdict::unknown("the twilio and sendgrid stubs' call logs were not collected"),
        );
    };
    let ops = v.booking_ops();
    let mut rows = Vec::new();
    let mut proof_ops = Vec::new();
    let mut extra = 0;
    for ((id, kind, channel), seqs) in delivered.repeated() {
        extra += seqs.len() - 1;
        let seqs: Vec<String> = seqs.iter().map(u64::to_string).collect();
        rows.push(format!(
            "appointment {id} {kind} {channel} delivered {} times (stub calls {})",
            seqs.len(),
            seqs.join(", ")
        ));
        proof_ops.extend(ops.get(id).copied());
    }
    proof_ops.sort_unstable();
    proof_ops.dedup();
    let (verdict, detail) = if rows.is_empty() {
        if let Some(reason) = delivered.missing_reason() {
            Verdict::unknown(format!("no reminder repeated, but {reason}"))
        } else if delivered.distinct() == 0 {
            let reason = "no reminder was delivered: nothing exercised the invariant".to_string();
            Verdict::unknown(reason)
        } else {
            (
                Verdict::Valid,
                format!("{} deliveries, none repeated", delivered.distinct()),
            )
        }
    } else {
        let detail = format!(
            "{} reminder(s) delivered more than once ({extra} extra messages)",
            rows.len()
        );
        (
            Verdict::Invalid {
                ops: proof_ops,
                rows,
            },
            detail,
        )
    };
    CheckResult::new(NAME, (verdict, detail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn one_delivery_per_channel_is_valid() {
        let ev = stubs(&[sms("a1", "confirmation", 1), email("a1", "confirmation", 1)]);
        let r = check_no_duplicate_reminders(&history(vec![]), &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
    }

    #[test]
    fn a_repeated_sms_is_invalid_with_its_calls_and_booking_op() {
        let ev = stubs(&[
            sms("a1", "confirmation", 1),
            sms("a1", "confirmation", 2),
            email("a1", "confirmation", 3),
        ]);
        let h = history(vec![book(7, SLOT), booked(7, "a1")]);
        let r = check_no_duplicate_reminders(&h, &ev);
        match r.verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![7]);
                assert_eq!(rows.len(), 1);
                assert!(
                    rows[0].contains("sms delivered 2 times (stub calls 1, 2)"),
                    "{rows:?}"
                );
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn failed_calls_are_not_deliveries() {
        let mut failed = sms("a1", "confirmation", 1);
        failed.status = Some(503);
        let ev = stubs(&[failed, sms("a1", "confirmation", 2)]);
        let r = check_no_duplicate_reminders(&history(vec![]), &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
    }

    #[test]
    fn a_repeat_is_a_fact_but_no_repeat_needs_both_logs() {
        let mut ev = stubs(&[sms("a1", "confirmation", 1), sms("a1", "confirmation", 2)]);
        ev.stub_calls.remove("sendgrid");
        assert!(matches!(
            check_no_duplicate_reminders(&history(vec![]), &ev).verdict,
            Verdict::Invalid { .. }
        ));
        let mut ev = stubs(&[sms("a1", "confirmation", 1)]);
        ev.stub_calls.remove("sendgrid");
        match check_no_duplicate_reminders(&history(vec![]), &ev).verdict {
            Verdict::Unknown { reason } => assert!(reason.contains("sendgrid"), "{reason}"),
            v => panic!("expected unknown, got {v:?}"),
        }
    }

    #[test]
    fn without_logs_or_deliveries_it_is_unknown() {
        let r = check_no_duplicate_reminders(&history(vec![]), &Evidence::default());
        assert!(matches!(r.verdict, Verdict::Unknown { .. }));
        let r = check_no_duplicate_reminders(&history(vec![]), &stubs(&[]));
        assert!(matches!(r.verdict, Verdict::Unknown { .. }));
    }
}
