//! Evidence: what the engine reads after the quiesce period, straight from the servers
//! (bypassing the proxies): the appointment rows, every stub's call log, the broker's queue
//! depths and each replica's `/metrics`.

use std::collections::BTreeMap;
use std::time::Duration;

use chaos_model::{AppointmentRow, Evidence, QueueDepth, ScheduleRow, Slot, StubCall, WaitlistRow};

use crate::env::Endpoints;

pub async fn collect_evidence(endpoints: &Endpoints) -> Evidence {
    let mut ev = Evidence::default();
    match bounded(READ_LIMIT, rows(&endpoints.postgres_direct)).await {
        Ok((appointments, schedules, waitlist)) => {
            ev.appointments = Some(appointments);
            ev.schedules = Some(schedules);
            ev.waitlist = Some(waitlist);
        }
        Err(e) => ev.errors.push(format!("appointments and schedules: {e}")),
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client builds");
    for (name, control) in &endpoints.stubs {
        match stub_calls(&http, control).await {
            Ok(calls) => {
                ev.stub_calls.insert(name.clone(), calls);
            }
            Err(e) => ev.errors.push(format!("{name} calls: {e}")),
        }
    }
    for base in &endpoints.target {
        match text(&http, &format!("{base}/metrics")).await {
            Ok(t) => {
                ev.metrics.insert(base.clone(), t);
            }
            Err(e) => ev.errors.push(format!("{base}/metrics: {e}")),
        }
    }
    if let Some(addr) = endpoints.direct.get("rabbitmq") {
        match bounded(READ_LIMIT, queue_depths(addr)).await {
            Ok(q) => ev.queues = Some(q),
            Err(e) => ev.errors.push(format!("queue depths: {e}")),
        }
    }
    ev
}

/// The longest one source of evidence may take to read: a server that accepts a connection
/// and then answers nothing (a lock, a wedged channel) costs this, not the run.
pub(crate) const READ_LIMIT: Duration = Duration::from_secs(20);

/// `read` within `limit`, or an error saying it took too long.
pub(crate) async fn bounded<T>(
    limit: Duration,
    read: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {limit:?}")))
}

/// The queues MediConnect declares: its reminders and their dead letters.
const QUEUES: [&str; 2] = ["reminders", "reminders.dead"];

/// Each queue's depth by a passive declare (which fails, and closes its channel, for a queue
/// that does not exist: one channel per queue).
pub(crate) async fn queue_depths(addr: &str) -> Result<BTreeMap<String, QueueDepth>, String> {
    use lapin::options::QueueDeclareOptions;
    let url = format!("amqp://guest:guest@{addr}/%2f?connection_timeout=5000");
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        lapin::Connection::connect(&url, lapin::ConnectionProperties::default()),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for q in QUEUES {
        let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        if let Ok(d) = ch
            .queue_declare(q.into(), passive, lapin::types::FieldTable::default())
            .await
        {
            out.insert(
                q.to_string(),
                QueueDepth {
                    messages: d.message_count(),
                    consumers: d.consumer_count(),
                },
            );
        }
    }
    let _ = conn.close(200, "evidence collected".into()).await;
    Ok(out)
}

async fn text(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let resp = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    resp.text().await.map_err(|e| e.to_string())
}

type Rows = (Vec<AppointmentRow>, Vec<ScheduleRow>, Vec<WaitlistRow>);

async fn rows(conninfo: &str) -> Result<Rows, String> {
    let (client, conn) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_postgres::connect(conninfo, tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let task = tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT id::text, patient_id, provider_id, extract(epoch FROM starts_at)::bigint, status, version
             FROM appointments ORDER BY created_at, id",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let templates = client
        .query(
            "SELECT provider_id, weekday, start_minute, end_minute, slot_minutes
             FROM schedule_templates ORDER BY provider_id, weekday",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let waiting = client
        .query(
            "SELECT id, patient_id, provider_id, extract(epoch FROM starts_at)::bigint, status, appointment_id::text
             FROM waitlist ORDER BY id",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    drop(client);
    let _ = task.await;
    let waitlist = waiting
        .iter()
        .map(|r| WaitlistRow {
            id: r.get(0),
            patient: r.get::<_, i32>(1) as u32,
            slot: Slot {
                provider: r.get::<_, i32>(2) as u32,
                start: r.get(3),
            },
            status: r.get(4),
            appointment: r.get(5),
        })
        .collect();
    let schedules = templates
        .iter()
        .map(|r| ScheduleRow {
            provider: r.get::<_, i32>(0) as u32,
            weekday: r.get::<_, i16>(1) as u8,
            start_minute: r.get::<_, i32>(2) as u32,
            end_minute: r.get::<_, i32>(3) as u32,
            slot_minutes: r.get::<_, i32>(4) as u32,
        })
        .collect();
    let appointments = rows
        .iter()
        .map(|r| AppointmentRow {
            id: r.get(0),
            patient: r.get::<_, i32>(1) as u32,
            slot: Slot {
                provider: r.get::<_, i32>(2) as u32,
                start: r.get(3),
            },
            status: r.get(4),
            version: Some(r.get::<_, i32>(5) as u32),
        })
        .collect();
    Ok((appointments, schedules, waitlist))
}

pub(crate) async fn stub_calls(
    http: &reqwest::Client,
    control: &str,
) -> Result<Vec<StubCall>, String> {
    let resp = http
        .get(format!("{control}/calls"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    resp.json().await.map_err(|e| e.to_string())
}
