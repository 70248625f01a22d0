//! Circuit breakers of the hardened profile (000:C3, 001:C-2), one per external provider:
//! after `threshold` failures in a row calls fail fast while the circuit is open; the open
//! time doubles with every trip up to a cap, with jitter; when it has passed, one trial
//! call decides whether the circuit closes again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One breaker's state.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    base: Duration,
    max: Duration,
    failures: u32,
    /// Trips since the last success: the exponent of the open time.
    trips: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn new(threshold: u32, base: Duration, max: Duration) -> Breaker {
        Breaker {
            threshold,
            base,
            max,
            failures: 0,
            trips: 0,
            open_until: None,
        }
    }

    /// Whether a call may go now. While open, no; once the open time has passed, one trial
    /// call may go (the circuit stays open for the others until it is recorded).
    pub fn try_acquire(&mut self) -> bool {
        match self.open_until {
            None => true,
            Some(t) if Instant::now() >= t => {
                // Half-open: this caller is the trial; the rest wait out another period.
                self.open_until = Some(Instant::now() + self.open_time());
                true
            }
            Some(_) => false,
        }
    }

    pub fn record(&mut self, ok: bool) {
        if ok {
            self.failures = 0;
            self.trips = 0;
            self.open_until = None;
            return;
        }
        self.failures += 1;
        if self.failures >= self.threshold {
            self.trips += 1;
            self.open_until = Some(Instant::now() + self.open_time());
        }
    }

    /// Open: calls are being refused now. Once the open time has passed the breaker is
    /// half-open (the next call is a trial) and no longer counts as open, so the gauge falls
    /// after a heal even when no call comes to try it.
    pub fn is_open(&self) -> bool {
        self.open_until.is_some_and(|t| Instant::now() < t)
    }

    /// The current open time: `base * 2^(trips - 1)`, capped, plus up to a quarter of
    /// jitter so that replicas do not probe in step.
    fn open_time(&self) -> Duration {
        let exp = self.trips.saturating_sub(1).min(16);
        let d = self.base.saturating_mul(1 << exp).min(self.max);
        d + d.mul_f64(jitter() * 0.25)
    }
}

/// A uniform number in [0, 1) from the OS-seeded generator behind v4 UUIDs.
pub fn jitter() -> f64 {
    (uuid::Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64
}

/// The breakers of one replica: the notification worker's two channels and the EHR sync.
/// Shared with `/metrics`, which exports whether each is open.
#[derive(Debug)]
pub struct Breakers {
    pub twilio: Mutex<Breaker>,
    pub sendgrid: Mutex<Breaker>,
    pub ehr: Mutex<Breaker>,
}

impl Default for Breakers {
    fn default() -> Self {
        Breakers {
            // Notifications: 5 failures in a row, then 2 s open, doubling up to 8 s.
            twilio: Mutex::new(Breaker::new(
                5,
                Duration::from_secs(2),
                Duration::from_secs(8),
            )),
            sendgrid: Mutex::new(Breaker::new(
                5,
                Duration::from_secs(2),
                Duration::from_secs(8),
            )),
            // The EHR sync (001:C-2, 000:S1): 3 failed pushes in a row, then 1 s open,
            // doubling up to 16 s: a failing or hanging EHR sees a trial now and then.
            ehr: Mutex::new(Breaker::new(
                3,
                Duration::from_secs(1),
                Duration::from_secs(16),
            )),
        }
    }
}

impl Breakers {
    /// (provider, open) for every breaker, for the gauges.
    pub fn states(&self) -> [(&'static str, bool); 3] {
        let open = |b: &Mutex<Breaker>| b.lock().expect("breaker lock poisoned").is_open();
        [
            ("ehr", open(&self.ehr)),
            ("sendgrid", open(&self.sendgrid)),
            ("twilio", open(&self.twilio)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_on_a_successful_trial() {
        let mut b = Breaker::new(3, Duration::from_millis(0), Duration::from_millis(0));
        for _ in 0..2 {
            b.record(false);
        }
        assert!(!b.is_open());
        b.record(false);
        assert_eq!(b.trips, 1);
        assert!(
            !b.is_open(),
            "an open time of zero has passed at once: half-open"
        );
        assert!(b.try_acquire(), "one trial goes");
        b.record(true);
        assert!(!b.is_open());
        assert!(b.try_acquire());
    }

    #[test]
    fn refuses_while_open_and_doubles_the_open_time() {
        let mut b = Breaker::new(1, Duration::from_secs(10), Duration::from_secs(15));
        b.record(false);
        assert!(b.is_open());
        assert!(!b.try_acquire(), "open for 10 s");
        assert_eq!(b.trips, 1);
        let first = b.open_time();
        b.record(false);
        let second = b.open_time();
        assert!(first >= Duration::from_secs(10) && first < Duration::from_millis(12_501));
        assert!(
            second >= Duration::from_secs(15),
            "doubled and capped: {second:?}"
        );
    }
}
