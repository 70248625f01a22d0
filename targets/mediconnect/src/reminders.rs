//! The reminder poller: finds appointments due a reminder 24 h and 1 h before they start,
//! on a clock that can run faster than real time so a run sees reminders within seconds.
//!
//! `naive` (000:S3): every replica polls without a lock and publishes before it marks, so
//! replicas that poll at the same moment send the same reminder twice. `hardened`: one
//! poller at a time (a transaction-scoped advisory lock), and the marks and the outbox rows
//! commit together.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::Pool;

use crate::broker::{Broker, Reminder};
use crate::config::Profile;
use crate::db::DbError;

/// The service's idea of now: `start` at the real instant `epoch`, advancing `scale`
/// virtual seconds per real second. Replicas given the same three values agree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    pub start: f64,
    pub epoch: f64,
    pub scale: f64,
}

impl Clock {
    pub fn real() -> Clock {
        Clock {
            start: 0.0,
            epoch: 0.0,
            scale: 1.0,
        }
    }

    pub fn now(&self) -> f64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.start + (real - self.epoch) * self.scale
    }
}

/// Appointments due a reminder at virtual time $1, with the reminder kind: the 24 h one
/// while more than an hour remains, the 1 h one in the last hour.
const DUE: &str = "
    FROM appointments a
    JOIN patients p ON p.id = a.patient_id
    CROSS JOIN (VALUES ('24h', 86400.0), ('1h', 3600.0)) AS k(kind, secs)
    WHERE a.status = 'booked'
      AND a.starts_at > to_timestamp($1)
      AND a.starts_at - make_interval(secs => k.secs) <= to_timestamp($1)
      AND (k.kind = '1h' OR a.starts_at - interval '1 hour' > to_timestamp($1))
      AND NOT EXISTS (SELECT 1 FROM reminder_marks m WHERE m.appointment_id = a.id AND m.kind = k.kind)";

/// One polling round; returns how many reminders it queued.
pub async fn poll_once(
    pool: &Pool,
    profile: Profile,
    broker: &Broker,
    now: f64,
) -> Result<usize, DbError> {
    let mut client = pool.get().await?;
    match profile {
        Profile::Naive => {
            let rows = client
                .query(
                    &format!(
                        "SELECT a.id::text, k.kind, p.phone, p.email,
                                to_char(a.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') {DUE} LIMIT 500"
                    ),
                    &[&now],
                )
                .await?;
            let mut sent = 0;
            for r in &rows {
                let (id, kind): (String, String) = (r.get(0), r.get(1));
                let when: String = r.get(4);
                let reminder = Reminder {
                    body: format!("MediConnect: your appointment on {when} UTC. Ref {id}/{kind}"),
                    appointment_id: id.clone(),
                    kind: kind.clone(),
                    phone: r.get(2),
                    email: r.get(3),
                    attempt: 0,
                    trace: None,
                };
                if broker.publish(&reminder).await.is_err() {
                    break;
                }
                client
                    .execute(
                        &client.prepare_cached("INSERT INTO reminder_marks (appointment_id, kind) VALUES ($1::text::uuid, $2) ON CONFLICT DO NOTHING").await?,
                        &[&id, &kind],
                    )
                    .await?;
                sent += 1;
            }
            Ok(sent)
        }
        Profile::Hardened => {
            let tx = client.transaction().await?;
            let leader: bool = tx
                .query_one(
                    &tx.prepare_cached("SELECT pg_try_advisory_xact_lock(4242)")
                        .await?,
                    &[],
                )
                .await?
                .get(0);
            if !leader {
                tx.commit().await?;
                return Ok(0);
            }
            let marked = tx
                .query(
                    &format!(
                        "INSERT INTO reminder_marks (appointment_id, kind)
                         SELECT a.id, k.kind {DUE} LIMIT 500
                         ON CONFLICT DO NOTHING RETURNING appointment_id::text, kind"
                    ),
                    &[&now],
                )
                .await?;
            for r in &marked {
                let (id, kind): (String, String) = (r.get(0), r.get(1));
                crate::outbox::enqueue(&tx, &id, &kind).await?;
            }
            tx.commit().await?;
            Ok(marked.len())
        }
    }
}

/// Poll on every multiple of `period` of the real clock until the process ends. Like a
/// cron schedule ("every 5 minutes"), the ticks fall at the same instants on every replica,
/// which is what makes naive's unlocked pollers collide.
pub async fn run(
    pool: Pool,
    profile: Profile,
    broker: Arc<Broker>,
    clock: Clock,
    period: Duration,
) {
    loop {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let period_ns = period.as_nanos().max(1);
        let wait = period_ns - real.as_nanos() % period_ns;
        tokio::time::sleep(Duration::from_nanos(wait as u64)).await;
        match poll_once(&pool, profile, &broker, clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("reminder poller queued {n} reminder(s)"),
            Err(e) => tracing::warn!("reminder poller: {e}"),
        }
    }
}
