//! What the quiesce phase left behind: whether work was still in flight when the evidence
//! was collected (then a missing reminder may still be on its way, and the reminder checkers
//! say unknown instead of lost), and when the evidence was collected.

use chaos_model::{Dur, Evidence, History, Record};

/// "still in flight: 3 outbox rows, 2 messages queued, last stub call 120 ms before
/// collection" when the quiesce phase ended before the system drained; `None` when it
/// drained. Evidence that does not say (an older bundle) cannot show that nothing was still
/// on its way: that is unknown too, never proof of a loss.
pub fn still_in_flight(evidence: &Evidence) -> Option<String> {
    let Some(d) = evidence.drain.as_ref() else {
        return Some(
            "the evidence does not say whether the system drained before it was collected".into(),
        );
    };
    if d.drained {
        return None;
    }
    let n = |v: Option<u64>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
    Some(format!(
        "still in flight: {} outbox rows, {} messages queued, last stub call {} ms before collection (waited {} ms)",
        n(d.outbox),
        n(d.queued),
        n(d.stubs_idle_ms),
        d.waited_ms
    ))
}

/// The latest time of any record of the history (its end), in microseconds.
pub fn history_end_us(history: &History) -> u64 {
    history
        .records
        .iter()
        .map(Record::time_us)
        .max()
        .unwrap_or(0)
}

/// When the evidence was collected, in Unix milliseconds, as a lower bound: the workload's
/// end (its planned duration, or the history's last record when ops ran over) plus the
/// quiesce phase's wait (`drain.waited_ms`; 0 when the evidence does not say), and never
/// before the last stub call. `None` without the run's start time.
pub fn collected_unix_ms(duration: Dur, history: &History, evidence: &Evidence) -> Option<u64> {
    let t0 = evidence.run_started_unix_ms?;
    let workload_end_us = duration.as_micros().max(history_end_us(history));
    let waited = evidence.drain.as_ref().map_or(0, |d| d.waited_ms);
    let last_call = evidence
        .stub_calls
        .values()
        .flatten()
        .map(|c| c.at_ms)
        .max()
        .unwrap_or(0);
    Some((t0 + workload_end_us / 1000 + waited).max(last_call))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaos_model::Drain;

    #[test]
    fn undrained_work_is_named_and_drained_work_is_not() {
        let mut ev = Evidence {
            drain: Some(Drain {
                drained: false,
                waited_ms: 15_000,
                outbox: Some(3),
                queued: Some(2),
                stubs_idle_ms: Some(120),
            }),
            ..Evidence::default()
        };
        assert_eq!(
            still_in_flight(&ev).as_deref(),
            Some(
                "still in flight: 3 outbox rows, 2 messages queued, last stub call 120 ms before collection (waited 15000 ms)"
            )
        );
        ev.drain.as_mut().unwrap().drained = true;
        assert_eq!(still_in_flight(&ev), None);
        // Evidence that does not say is no proof that nothing was on its way.
        assert!(still_in_flight(&Evidence::default()).is_some_and(|m| m.contains("does not say")));
    }

    #[test]
    fn collection_is_the_workload_end_plus_the_wait() {
        let mut ev = Evidence {
            run_started_unix_ms: Some(1_000_000),
            drain: Some(Drain {
                drained: true,
                waited_ms: 500,
                outbox: None,
                queued: None,
                stubs_idle_ms: None,
            }),
            ..Evidence::default()
        };
        let h = History::default();
        assert_eq!(
            collected_unix_ms(Dur::from_secs(10), &h, &ev),
            Some(1_010_500)
        );
        ev.run_started_unix_ms = None;
        assert_eq!(collected_unix_ms(Dur::from_secs(10), &h, &ev), None);
    }
}
