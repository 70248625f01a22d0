//! Evidence: what the engine reads after the quiesce period, straight from the servers
//! (bypassing the proxies): the appointment rows and every stub's call log.

use std::time::Duration;

use chaos_model::{AppointmentRow, Evidence, Slot, StubCall};

use crate::env::Endpoints;

pub async fn collect_evidence(endpoints: &Endpoints) -> Evidence {
    let mut ev = Evidence::default();
    match appointments(&endpoints.postgres_direct).await {
        Ok(rows) => ev.appointments = Some(rows),
        Err(e) => ev.errors.push(format!("appointments: {e}")),
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
    ev
}

async fn appointments(conninfo: &str) -> Result<Vec<AppointmentRow>, String> {
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
            "SELECT id::text, patient_id, provider_id, extract(epoch FROM starts_at)::bigint, status
             FROM appointments ORDER BY created_at, id",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    drop(client);
    let _ = task.await;
    Ok(rows
        .iter()
        .map(|r| AppointmentRow {
            id: r.get(0),
            patient: r.get::<_, i32>(1) as u32,
            slot: Slot {
                provider: r.get::<_, i32>(2) as u32,
                start: r.get(3),
            },
            status: r.get(4),
        })
        .collect())
}

async fn stub_calls(http: &reqwest::Client, control: &str) -> Result<Vec<StubCall>, String> {
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
