//! No lost reminders (000:C2, 000:S3): every reminder that fell due was delivered on both
//! channels (SMS and e-mail) by the time the evidence was collected.
//!
//! The confirmation is due for every appointment the database holds, live or cancelled: a
//! booking whose answer was lost or was an error (`info`) still owes it if its row exists,
//! the row proves it happened. On a service clock (`evidence.service_clock`; service time =
//! start + (real - epoch) * scale) the 24 h and 1 h reminders are due too, as MediConnect's
//! poller decides (`targets/mediconnect/src/reminders.rs`): a live appointment starting at S
//! gets its 24 h reminder from a poll in [S - 24 h, S - 1 h) and its 1 h reminder from one in
//! [S - 1 h, S), each window counted from when the row got its slot (booked, promoted, or
//! last rescheduled: an appointment booked within the last hour gets only the 1 h one). The
//! poller runs every `options.reminder_poll` of real time, so a reminder is owed when that
//! window, cut at the collection of the evidence, lasted at least two poll periods of real
//! time. The collection is taken as the workload's end plus the quiesce phase's wait
//! (`drain.waited_ms`), the earliest it can have been. Without a service clock (real time)
//! only confirmations are owed. A reminder missing while the quiesce phase ended with work
//! in flight is unknown, not lost.

use chaos_model::{CheckResult, Dur, Evidence, History, OpKind, Scenario, ServiceClock, Verdict};

use crate::deliveries::{REMINDER_STUBS, channel_bit};
use crate::drain::{collected_unix_ms, history_end_us, still_in_flight};
use crate::fasthash::FastMap;
use crate::view::View;

pub const NAME: &str = "no_lost_reminders";
const MAX_PROOF_ROWS: usize = 50;
const HOUR: f64 = 3600.0;

pub fn check_no_lost_reminders(
    scenario: &Scenario,
    history: &History,
    evidence: &Evidence,
) -> CheckResult {
    check(scenario, &View::new(history, evidence))
}

/// The reminder poller's clock and period, and when the evidence was collected.
struct Poller {
    clock: ServiceClock,
    /// Two poll periods, in real seconds.
    two_polls_s: f64,
    collected_s: f64,
    /// Real Unix seconds of the history's zero.
    t0_s: f64,
}

impl Poller {
    fn service(&self, real_s: f64) -> f64 {
        self.clock.start + (real_s - self.clock.epoch) * self.clock.scale
    }

    /// Whether a reminder due from service time `from` to `until` was owed: the window, cut
    /// at the collection, lasted two poll periods of real time.
    fn owed(&self, from: f64, until: f64) -> bool {
        let until = until.min(self.service(self.collected_s));
        until > from && (until - from) / self.clock.scale >= self.two_polls_s
    }
}

pub(crate) fn check(scenario: &Scenario, v: &View<'_>) -> CheckResult {
    let evidence = v.evidence;
    let unknown = |reason: String| CheckResult::new(NAME, Verdict::unknown(reason));
    let Some(rows) = &evidence.appointments else {
        return unknown("the appointment rows were not collected".into());
    };
    let Some(delivered) = v.deliveries() else {
        return unknown("the twilio and sendgrid stubs' call logs were not collected".into());
    };
    if let Some(reason) = delivered.missing_reason() {
        return unknown(reason);
    }
    if rows.is_empty() {
        return unknown("no appointment exists: nothing exercised the invariant".into());
    }
    let poller = match evidence.service_clock {
        None => None,
        Some(clock) => {
            let Some(collected_ms) =
                collected_unix_ms(scenario.workload.duration, v.history, evidence)
            else {
                return unknown(
                    "the evidence has no start time to place the service clock's due times on"
                        .into(),
                );
            };
            Some(Poller {
                clock,
                two_polls_s: 2.0 * poll_s(scenario.options.reminder_poll),
                collected_s: collected_ms as f64 / 1e3,
                t0_s: evidence.run_started_unix_ms.unwrap_or(0) as f64 / 1e3,
            })
        }
    };
    let ops = v.booking_ops();
    let since = poller.as_ref().map(|_| slot_since(v)).unwrap_or_default();
    let end_us = poller.as_ref().map_or(0, |_| history_end_us(v.history));
    let confirmed = delivered.confirmed();
    let mut owed = [0usize; 3];
    let mut unplaced = 0usize;
    let mut missing = Vec::new();
    let mut proof_ops = Vec::new();
    for row in rows {
        let mut lost: Vec<String> = Vec::new();
        let reached = confirmed.get(row.id.as_str()).copied().unwrap_or(0);
        owed[0] += 1;
        let by: Vec<&str> = REMINDER_STUBS
            .iter()
            .map(|(_, ch)| *ch)
            .filter(|ch| reached & channel_bit(ch) == 0)
            .collect();
        if !by.is_empty() {
            lost.push(format!("no confirmation by {}", by.join(" or ")));
        }
        if let (Some(p), "booked") = (&poller, row.status.as_str()) {
            // When the row got its slot: its booking's, promotion's or last reschedule's
            // answer; a row no op names got it before the workload's end at the latest.
            let got_us = since.get(row.id.as_str()).copied().unwrap_or_else(|| {
                unplaced += 1;
                end_us
            });
            let got = p.service(p.t0_s + got_us as f64 / 1e6);
            let start = row.slot.start as f64;
            for (i, kind, from, until) in [
                (1, "24h", start - 24.0 * HOUR, start - HOUR),
                (2, "1h", start - HOUR, start),
            ] {
                if !p.owed(from.max(got), until) {
                    continue;
                }
                owed[i] += 1;
                let by: Vec<&str> = REMINDER_STUBS
                    .iter()
                    .map(|(_, ch)| *ch)
                    .filter(|ch| !delivered.has((row.id.as_str(), kind, ch)))
                    .collect();
                if !by.is_empty() {
                    lost.push(format!("no {kind} reminder by {}", by.join(" or ")));
                }
            }
        }
        if !lost.is_empty() {
            missing.push(format!(
                "appointment {} ({}): {}",
                row.id,
                row.slot,
                lost.join("; ")
            ));
            proof_ops.extend(ops.get(row.id.as_str()).copied());
        }
    }
    let owed_text = if poller.is_some() {
        let mut t = format!(
            "{} confirmations, {} 24h and {} 1h reminders owed",
            owed[0], owed[1], owed[2]
        );
        if unplaced > 0 {
            t += &format!(" ({unplaced} rows named by no op counted from the workload's end)");
        }
        t
    } else {
        format!(
            "{} appointments, confirmations owed (real clock: no 24h or 1h reminder falls due)",
            owed[0]
        )
    };
    proof_ops.sort_unstable();
    let (verdict, detail) = if missing.is_empty() {
        (
            Verdict::Valid,
            format!("{owed_text}: every one delivered by SMS and e-mail"),
        )
    } else if let Some(in_flight) = still_in_flight(evidence) {
        Verdict::unknown(format!(
            "{} of {} appointments lack a reminder, {in_flight}",
            missing.len(),
            rows.len()
        ))
    } else {
        let detail = format!(
            "{owed_text}: {} of {} appointments lack one",
            missing.len(),
            rows.len()
        );
        let n = missing.len();
        missing.truncate(MAX_PROOF_ROWS);
        if n > MAX_PROOF_ROWS {
            missing.push(format!("… {} more", n - MAX_PROOF_ROWS));
        }
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

fn poll_s(d: Dur) -> f64 {
    d.0.as_secs_f64()
}

/// Appointment -> when (history microseconds) its row last got its slot, by the answers that
/// name it: its booking, the promotion that booked it, the reschedules of it (any outcome:
/// an unanswered move may have landed as late as its end).
fn slot_since<'a>(v: &View<'a>) -> FastMap<&'a str, u64> {
    let end = history_end_us(v.history);
    let mut since: FastMap<&'a str, u64> = FastMap::default();
    let mut later = |a: &'a str, t: u64| {
        let e = since.entry(a).or_insert(t);
        *e = (*e).max(t);
    };
    for o in &v.ops {
        let t = o.complete_us.unwrap_or(end);
        match o.f {
            OpKind::Book => {
                if let Some(a) = o.appointment {
                    later(a, t);
                }
            }
            OpKind::Reschedule => {
                if let Some(a) = o.target.or(o.appointment) {
                    later(a, t);
                }
            }
            _ => {}
        }
        if let Some(p) = o.promoted {
            later(p, t);
        }
    }
    since
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::{Record, Slot, StubCall};

    fn run(h: &History, ev: &Evidence) -> CheckResult {
        check_no_lost_reminders(&scenario(false), h, ev)
    }

    #[test]
    fn every_appointment_confirmed_on_both_channels_is_valid() {
        let mut ev = stubs(&[sms("a1", "confirmation", 1), email("a1", "confirmation", 2)]);
        ev.appointments = Some(vec![row("a1")]);
        let r = run(&history(vec![]), &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        assert!(r.detail.contains("real clock"), "{}", r.detail);
    }

    #[test]
    fn a_row_without_its_email_is_invalid_even_when_the_booking_was_info() {
        let mut ev = stubs(&[sms("a1", "confirmation", 1)]);
        ev.appointments = Some(vec![row("a1")]);
        // The client saw a 500 (info), but the row exists: the confirmation is owed.
        let h = history(vec![book(4, SLOT), server_error(4, "a1")]);
        let r = run(&h, &ev);
        match r.verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![4]);
                assert!(rows[0].contains("no confirmation by email"), "{rows:?}");
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn without_rows_or_a_log_it_is_unknown_and_says_which() {
        let r = run(&history(vec![]), &stubs(&[]));
        assert!(matches!(r.verdict, Verdict::Unknown { .. }));
        let mut ev = stubs(&[sms("a1", "confirmation", 1)]);
        ev.appointments = Some(vec![row("a1")]);
        ev.stub_calls.remove("sendgrid");
        match run(&history(vec![]), &ev).verdict {
            Verdict::Unknown { reason } => {
                assert_eq!(reason, "the sendgrid stub's call log was not collected")
            }
            v => panic!("expected unknown, got {v:?}"),
        }
    }

    #[test]
    fn a_missing_reminder_while_work_is_in_flight_is_unknown() {
        let mut ev = stubs(&[sms("a1", "confirmation", 1)]);
        ev.appointments = Some(vec![row("a1")]);
        ev.drain = Some(drain(false));
        match run(&history(vec![]), &ev).verdict {
            Verdict::Unknown { reason } => assert!(
                reason.contains("1 of 1 appointments lack a reminder, still in flight: 2 outbox rows, 1 messages queued"),
                "{reason}"
            ),
            v => panic!("expected unknown, got {v:?}"),
        }
        ev.drain = Some(drain(true));
        assert!(matches!(
            run(&history(vec![]), &ev).verdict,
            Verdict::Invalid { .. }
        ));
    }

    /// The service clock: 1 real second is 1 service hour, from service time `SVC0` at the
    /// run's start `T0_S` (real Unix seconds).
    const T0_S: u64 = 2_000_000_000;
    const SVC0: i64 = 1_000_000;
    const H: i64 = 3600;

    fn slot_in(hours: f64) -> Slot {
        Slot {
            provider: 1,
            start: SVC0 + (hours * H as f64) as i64,
        }
    }

    /// Appointments booked (acknowledged at 0.1 ms) to start these many service hours after
    /// the run's start, with every reminder `kinds` delivered on both channels.
    fn clocked(starts: &[(&str, f64)], kinds: &[&str]) -> (History, Evidence) {
        let mut calls: Vec<StubCall> = Vec::new();
        let mut records: Vec<Record> = Vec::new();
        let mut rows = Vec::new();
        for (i, (id, hours)) in starts.iter().enumerate() {
            let op = i as u64 + 1;
            records.extend([book(op, slot_in(*hours)), booked(op, id)]);
            rows.push(row_at(id, slot_in(*hours)));
            calls.push(sms(id, "confirmation", 0));
            calls.push(email(id, "confirmation", 0));
            for k in kinds {
                calls.push(sms(id, k, 0));
                calls.push(email(id, k, 0));
            }
        }
        let mut ev = stubs(&calls);
        ev.appointments = Some(rows);
        ev.run_started_unix_ms = Some(T0_S * 1000);
        ev.drain = Some(drain(true));
        ev.service_clock = Some(ServiceClock {
            start: SVC0 as f64,
            epoch: T0_S as f64,
            scale: H as f64,
        });
        (history(records), ev)
    }

    #[test]
    fn on_a_service_clock_the_due_24h_and_1h_reminders_are_owed() {
        // Collected at 10 s + 1 s of quiesce: 11 service hours in. a6 starts 6 h in: both
        // due. a05 starts half an hour in: only the 1 h one. a100 is far off: neither.
        let starts = [("a6", 6.0), ("a05", 0.5), ("a100", 100.0)];
        let (h, ev) = clocked(&starts, &["24h", "1h"]);
        let r = run(&h, &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        assert!(
            r.detail
                .contains("3 confirmations, 1 24h and 2 1h reminders owed"),
            "{}",
            r.detail
        );
        let (h, mut ev) = clocked(&starts, &["1h"]);
        match run(&h, &ev).verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![1], "only a6 owed a 24 h reminder");
                assert_eq!(rows.len(), 1, "{rows:?}");
                assert!(
                    rows[0].contains("a6") && rows[0].contains("no 24h reminder by sms or email"),
                    "{rows:?}"
                );
            }
            v => panic!("expected invalid, got {v:?}"),
        }
        // On the real clock only confirmations are owed.
        ev.service_clock = None;
        assert_eq!(run(&h, &ev).verdict, Verdict::Valid);
    }

    #[test]
    fn a_reminder_is_owed_only_once_two_polls_fit_its_window() {
        // The 1 h window of a10 (9 h to 10 h in) lasts 1 real second: owed when polling
        // every 100 ms; polling every 1.5 s, two polls need 3 s: not owed.
        let (h, ev) = clocked(&[("a10", 10.0)], &["24h"]);
        assert!(matches!(run(&h, &ev).verdict, Verdict::Invalid { .. }));
        let mut slow = scenario(false);
        slow.options.reminder_poll = Dur::from_millis(1_500);
        let r = check_no_lost_reminders(&slow, &h, &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        // A reschedule answered 9.9 s in moved it: its windows count from then (0.1 s left).
        let mut records = h.records.clone();
        records.extend([
            edit(invoked(2, OpKind::Reschedule, 9_800_000), |i| {
                i.target = Some("a10".into())
            }),
            ended(2, chaos_model::Outcome::Ok, 9_900_000, Some(200)),
        ]);
        let r = run(&history(records), &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
    }
}
