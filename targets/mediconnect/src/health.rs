//! Readiness of a hardened replica (000:S6, 001:M-1): whether it can serve bookings now. A
//! probe on its own connection (so a saturated pool does not look like a dead database)
//! asks PostgreSQL every 200 ms, within 500 ms, for the table locks a booking needs, without
//! waiting for them. Redis and the broker do not count: sessions fall back to PostgreSQL and
//! confirmations wait in the outbox. Requests use the same state to refuse at once, with
//! `Retry-After`, what they could not serve (see `api::guard`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

const PERIOD: Duration = Duration::from_millis(200);
const DEADLINE: Duration = Duration::from_millis(500);

/// The locks a booking takes (its writes and its reads), asked for without waiting, in one
/// round trip. The leading ROLLBACK ends a transaction a refused lock left aborted.
const PROBE: &str = "ROLLBACK; BEGIN;
    LOCK TABLE appointments, outbox, idempotency_keys IN ROW EXCLUSIVE MODE NOWAIT;
    LOCK TABLE providers, schedule_templates, patients IN ACCESS SHARE MODE NOWAIT;
    ROLLBACK";

#[derive(Debug)]
pub struct Health {
    /// PostgreSQL answered the last probe in time.
    reachable: AtomicBool,
    /// ... and nothing held a lock a booking would wait for.
    bookable: AtomicBool,
    /// SIGTERM arrived: the replica is finishing what it has and takes nothing new.
    draining: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        // Start-up ran the migrations against the database just before: reachable.
        Health {
            reachable: AtomicBool::new(true),
            bookable: AtomicBool::new(true),
            draining: AtomicBool::new(false),
        }
    }
}

impl Health {
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    pub fn bookable(&self) -> bool {
        self.reachable() && self.bookable.load(Ordering::Relaxed)
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Ready: can serve bookings and is not shutting down.
    pub fn ready(&self) -> bool {
        self.bookable() && !self.draining()
    }

    fn set(&self, reachable: bool, bookable: bool) {
        self.reachable.store(reachable, Ordering::Relaxed);
        self.bookable.store(bookable, Ordering::Relaxed);
    }
}

/// Probe until the process ends.
pub async fn run_probe(conninfo: String, health: std::sync::Arc<Health>) {
    let mut client: Option<Client> = None;
    loop {
        match tokio::time::timeout(DEADLINE, probe(&mut client, &conninfo)).await {
            Ok(Ok(bookable)) => health.set(true, bookable),
            Ok(Err(e)) => {
                tracing::debug!("readiness probe: {e}");
                client = None;
                health.set(false, false);
            }
            Err(_) => {
                // A hung connection is dropped: the next probe starts afresh.
                client = None;
                health.set(false, false);
            }
        }
        tokio::time::sleep(PERIOD).await;
    }
}

/// One probe: Ok(true) when every lock was free, Ok(false) when one is held.
async fn probe(client: &mut Option<Client>, conninfo: &str) -> Result<bool, tokio_postgres::Error> {
    if client.as_ref().is_none_or(Client::is_closed) {
        let (c, conn) = tokio_postgres::connect(conninfo, NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        *client = Some(c);
    }
    let c = client.as_ref().expect("connected above");
    match c.simple_query(PROBE).await {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => Ok(false),
        Err(e) => Err(e),
    }
}
