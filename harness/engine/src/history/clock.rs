//! The run's clock: microseconds since the workload started, shared by ops and faults.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    t0: Instant,
    /// The wall clock at `t0`, in milliseconds since the Unix epoch.
    unix_ms0: u64,
}

impl Clock {
    pub fn start() -> Clock {
        let unix_ms0 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Clock {
            t0: Instant::now(),
            unix_ms0,
        }
    }

    /// The wall-clock time of the clock's zero, in milliseconds since the Unix epoch.
    pub fn unix_ms0(&self) -> u64 {
        self.unix_ms0
    }

    pub fn now_us(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The instant `us` microseconds after the start.
    pub fn at(&self, us: u64) -> Instant {
        self.t0 + Duration::from_micros(us)
    }
}
