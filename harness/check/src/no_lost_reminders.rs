//! No lost reminders: every appointment the database holds got its confirmation on every
//! channel by the end of the quiesce period (000:C2). A booking whose answer was lost or was
//! an error (`info`) still owes its confirmation if its row exists: the row proves it
//! happened.

use chaos_model::{CheckResult, Evidence, History, Verdict};

use crate::deliveries::channel_bit;
use crate::view::View;

pub const NAME: &str = "no_lost_reminders";
const CHANNELS: [&str; 2] = ["sms", "email"];

pub fn check_no_lost_reminders(history: &History, evidence: &Evidence) -> CheckResult {
    check(&View::new(history, evidence))
}

pub(crate) fn check(v: &View<'_>) -> CheckResult {
    let evidence = v.evidence;
    let unknown = |reason: &str| CheckResult::new(NAME, Verdict::unknown(reason));
    let Some(rows) = &evidence.appointments else {
        return unknown("the appointment rows were not collected");
    };
    let Some(delivered) = v.deliveries() else {
        return unknown("the stubs' call logs were not collected");
    };
    if rows.is_empty() {
        return unknown("no appointment exists: nothing exercised the invariant");
    }
    let ops = v.booking_ops();
    let confirmed = delivered.confirmed();
    let mut missing = Vec::new();
    let mut proof_ops = Vec::new();
    for row in rows {
        let reached = confirmed.get(row.id.as_str()).copied().unwrap_or(0);
        let lost: Vec<&str> = CHANNELS
            .iter()
            .copied()
            .filter(|ch| reached & channel_bit(ch) == 0)
            .collect();
        if !lost.is_empty() {
            missing.push(format!(
                "appointment {} ({}): no confirmation by {}",
                row.id,
                row.slot,
                lost.join(" or ")
            ));
            proof_ops.extend(ops.get(row.id.as_str()).copied());
        }
    }
    proof_ops.sort_unstable();
    let (verdict, detail) = if missing.is_empty() {
        (
            Verdict::Valid,
            format!(
                "{} appointments, every confirmation delivered by SMS and e-mail",
                rows.len()
            ),
        )
    } else {
        let detail = format!(
            "{} of {} appointments lack a confirmation",
            missing.len(),
            rows.len()
        );
        (
            Verdict::Invalid {
                ops: proof_ops,
                rows: missing,
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
    fn every_appointment_confirmed_on_both_channels_is_valid() {
        let mut ev = stubs(&[sms("a1", "confirmation", 1), email("a1", "confirmation", 2)]);
        ev.appointments = Some(vec![row("a1")]);
        let r = check_no_lost_reminders(&history(vec![]), &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
    }

    #[test]
    fn a_row_without_its_email_is_invalid_even_when_the_booking_was_info() {
        let mut ev = stubs(&[sms("a1", "confirmation", 1)]);
        ev.appointments = Some(vec![row("a1")]);
        // The client saw a 500 (info), but the row exists: the confirmation is owed.
        let h = history(vec![book(4, SLOT), server_error(4, "a1")]);
        let r = check_no_lost_reminders(&h, &ev);
        match r.verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![4]);
                assert!(rows[0].contains("no confirmation by email"), "{rows:?}");
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn without_rows_it_is_unknown() {
        let r = check_no_lost_reminders(&history(vec![]), &stubs(&[]));
        assert!(matches!(r.verdict, Verdict::Unknown { .. }));
    }
}
