//! The transactional outbox (hardened, 000:C2): a reminder is written in the same
//! transaction as the booking it belongs to, and a relay publishes it with publisher confirms
//! afterwards, so a broker outage delays reminders and never loses one. Every replica runs
//! a relay; `FOR UPDATE SKIP LOCKED` keeps them from publishing the same row twice.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};

use crate::broker::{Broker, Reminder};
use crate::db::DbError;

/// The reminder of kind `$2` for the appointment `a` of patient `p`, as an outbox payload,
/// with the trace of the request that booked the appointment (000:C13).
pub const PAYLOAD: &str = "jsonb_build_object(
    'appointment_id', a.id::text, 'kind', $2::text, 'phone', p.phone, 'email', p.email,
    'trace', a.trace_id,
    'body', 'MediConnect: your appointment on '
            || to_char(a.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')
            || ' UTC. Ref ' || a.id::text || '/' || $2::text)";

/// In the caller's transaction: queue a reminder of `kind` for an appointment.
pub async fn enqueue<C: GenericClient>(
    c: &C,
    appointment_id: &str,
    kind: &str,
) -> Result<(), DbError> {
    let sql = format!(
        "INSERT INTO outbox (payload) SELECT {PAYLOAD}
         FROM appointments a JOIN patients p ON p.id = a.patient_id
         WHERE a.id = $1::text::uuid"
    );
    c.execute(&c.prepare_cached(&sql).await?, &[&appointment_id, &kind])
        .await?;
    Ok(())
}

/// Publish what is waiting, oldest first, until the outbox is empty or the broker fails.
/// Returns how many reminders went out.
pub async fn relay_once(pool: &Pool, broker: &Broker) -> Result<usize, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            &tx.prepare_cached("SELECT id, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED").await?,
            &[],
        )
        .await?;
    let mut done = Vec::new();
    for r in &rows {
        let id: i64 = r.get(0);
        let payload: serde_json::Value = r.get(1);
        let Ok(reminder) = serde_json::from_value::<Reminder>(payload) else {
            tracing::error!(
                "outbox row {id} is not a reminder; marking it published to unblock the relay"
            );
            done.push(id);
            continue;
        };
        if let Err(e) = broker.publish(&reminder).await {
            tracing::warn!(
                "outbox relay: {e}; {} of {} published this round",
                done.len(),
                rows.len()
            );
            break;
        }
        done.push(id);
    }
    // A crash between a confirmed publish and this commit publishes the row again on the
    // next round: at least once. The consumer's de-duplication makes it exactly once.
    tx.execute(
        &tx.prepare_cached("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
            .await?,
        &[&done],
    )
    .await?;
    tx.commit().await?;
    Ok(done.len())
}

/// Keep `pending` at the number of unpublished outbox rows (the `mediconnect_outbox_pending`
/// gauge), counted every 500 ms; unchanged while the database cannot be asked.
///
/// The count starts a little below the oldest row that was pending last time: published rows
/// leave dead entries in the partial index until vacuum, and counting from the start would
/// walk all of them after a backlog. Ids come from one sequence and rows are only ever
/// published, so what lies further below was published already; the margin covers rows
/// whose transactions committed out of id order.
pub async fn run_gauge(pool: Pool, pending: std::sync::Arc<std::sync::atomic::AtomicU64>) {
    const MARGIN: i64 = 1000;
    let mut floor: i64 = 0;
    loop {
        let counted = async {
            let client = pool.get().await?;
            let row = client
                .query_one(
                    &client
                        .prepare_cached(
                            "SELECT coalesce(min(id), (SELECT coalesce(max(id), 0) FROM outbox)), count(*)
                             FROM outbox WHERE published_at IS NULL AND id >= $1",
                        )
                        .await?,
                    &[&floor],
                )
                .await?;
            Ok::<_, DbError>((row.get::<_, i64>(0), row.get::<_, i64>(1)))
        };
        if let Ok((oldest, n)) = counted.await {
            pending.store(n.max(0) as u64, std::sync::atomic::Ordering::Relaxed);
            floor = (oldest - MARGIN).max(0);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Relay until the process ends.
pub async fn run_relay(pool: Pool, broker: std::sync::Arc<Broker>) {
    loop {
        match relay_once(&pool, &broker).await {
            Ok(100) => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!("outbox relay: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
