//! The quiesce phase: after the workload, wait until the system has drained (no outbox row
//! waiting, no message in the broker's queues, ready or held unacknowledged by a consumer,
//! no stub called for `idle`), at most until the deadline. Reports how it ended; work still in flight then makes the reminder
//! checks unknown rather than invalid.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chaos_model::Drain;

use super::evidence::{bounded, queue_depths, stub_calls};
use crate::env::{Endpoints, Env};

const POLL: Duration = Duration::from_millis(500);
/// The longest one look at a source may take; one that does not answer counts as unknown.
const LOOK_LIMIT: Duration = Duration::from_secs(5);

/// One look at what is still in flight.
#[derive(Debug, Default)]
struct Look {
    outbox: Option<u64>,
    queued: Option<u64>,
    stubs_idle_ms: Option<u64>,
}

pub async fn drain(
    env: &Env,
    deadline: Duration,
    idle: Duration,
    note: &(dyn Fn(String) + Sync),
) -> Drain {
    let start = Instant::now();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client builds");
    let mut last_note = Instant::now();
    // A look that does not answer is cut off a little past the deadline: the phase ends
    // near its deadline however the servers behave.
    let cut_off = tokio::time::Instant::now() + deadline + LOOK_LIMIT;
    loop {
        let mut l = tokio::time::timeout_at(cut_off, look(env.endpoints(), &http))
            .await
            .unwrap_or_default();
        let mut drained = l.outbox.is_some_and(|n| n == 0)
            && l.queued.is_some_and(|n| n == 0)
            && l.stubs_idle_ms
                .is_some_and(|ms| ms >= idle.as_millis() as u64);
        if drained {
            // Nothing ready and the stubs quiet: is a consumer still holding messages (a
            // retry waiting out its backoff, a breaker's open time)? Asked last, as it costs
            // a second of an Erlang VM.
            let held = tokio::time::timeout_at(cut_off, env.broker_held_messages())
                .await
                .unwrap_or_else(|_| Err("rabbitmqctl cut off at the quiesce deadline".into()));
            drained = held.as_ref().is_ok_and(|n| *n == 0);
            l.queued = held.ok();
        }
        let waited = start.elapsed();
        if drained || waited >= deadline {
            return Drain {
                drained,
                waited_ms: waited.as_millis() as u64,
                outbox: l.outbox,
                queued: l.queued,
                stubs_idle_ms: l.stubs_idle_ms,
            };
        }
        if last_note.elapsed() >= Duration::from_secs(2) {
            last_note = Instant::now();
            let show = |v: Option<u64>| v.map_or_else(|| "?".to_string(), |n| n.to_string());
            note(format!(
                "draining: {} outbox rows, {} messages queued, stubs idle {} ms",
                show(l.outbox),
                show(l.queued),
                show(l.stubs_idle_ms)
            ));
        }
        tokio::time::sleep(POLL.min(deadline.saturating_sub(waited))).await;
    }
}

async fn look(endpoints: &Endpoints, http: &reqwest::Client) -> Look {
    let mut l = Look {
        outbox: bounded(LOOK_LIMIT, outbox_pending(&endpoints.postgres_direct))
            .await
            .ok(),
        ..Look::default()
    };
    if let Some(addr) = endpoints.direct.get("rabbitmq") {
        l.queued = bounded(LOOK_LIMIT, queue_depths(addr))
            .await
            .ok()
            .map(|q| q.values().map(|d| u64::from(d.messages)).sum());
    }
    let mut last_ms = 0u64;
    let mut every_log = true;
    for control in endpoints.stubs.values() {
        match stub_calls(http, control).await {
            Ok(calls) => {
                for c in &calls {
                    last_ms = last_ms.max(c.at_ms).max(c.answered_ms.unwrap_or(0));
                }
            }
            Err(_) => every_log = false,
        }
    }
    if every_log {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        l.stubs_idle_ms = Some(now_ms.saturating_sub(last_ms));
    }
    l
}

/// Outbox rows not yet published (0 where the profile has no outbox).
async fn outbox_pending(conninfo: &str) -> Result<u64, String> {
    let (client, conn) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_postgres::connect(conninfo, tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let task = tokio::spawn(conn);
    let exists: bool = client
        .query_one("SELECT to_regclass('outbox') IS NOT NULL", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let n = if exists {
        client
            .query_one(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?
            .get::<_, i64>(0) as u64
    } else {
        0
    };
    drop(client);
    let _ = task.await;
    Ok(n)
}
