//! The run's clock: microseconds since the workload started, shared by ops and faults.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    t0: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock { t0: Instant::now() }
    }

    pub fn now_us(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The instant `us` microseconds after the start.
    pub fn at(&self, us: u64) -> Instant {
        self.t0 + Duration::from_micros(us)
    }
}
