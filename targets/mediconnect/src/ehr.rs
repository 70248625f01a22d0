//! EHR sync: pushes appointments to the EHR's FHIR API in batches (000:S7). `naive` creates
//! each one with POST and a 2 s timeout, and retries what did not answer in time on the next
//! round, so an EHR that is merely slow ends up with two resources for one appointment.
//! `hardened` upserts with PUT to the appointment's own id, so a retry overwrites instead of
//! duplicating, and it also pushes status changes (cancellations).

use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::json;

use crate::config::Profile;
use crate::db::DbError;

const BATCH: i64 = 100;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .retry(reqwest::retry::never())
        .build()
        .expect("reqwest client builds")
}

/// The FHIR Appointment resource for one of ours; the identifier carries our id.
fn resource(id: &str, status: &str, start: i64, patient: i32, provider: i32) -> serde_json::Value {
    let fhir_status = if status == "cancelled" {
        "cancelled"
    } else {
        "booked"
    };
    json!({
        "resourceType": "Appointment",
        "identifier": [{ "system": "urn:mediconnect:appointment", "value": id }],
        "status": fhir_status,
        "start": crate::schedule::format_rfc3339(start),
        "end": crate::schedule::format_rfc3339(start + 1800),
        "participant": [
            { "actor": { "reference": format!("Patient/{patient}") }, "status": "accepted" },
            { "actor": { "reference": format!("Practitioner/{provider}") }, "status": "accepted" },
        ],
    })
}

/// One round: push what the EHR has not seen in its current state. Returns how many went.
pub async fn sync_once(
    pool: &Pool,
    profile: Profile,
    http: &reqwest::Client,
    base: &str,
) -> Result<usize, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &client.prepare_cached("SELECT a.id::text, a.status, extract(epoch FROM a.starts_at)::bigint, a.patient_id, a.provider_id, a.version
             FROM appointments a LEFT JOIN ehr_sync s ON s.appointment_id = a.id
             WHERE s.appointment_id IS NULL OR ($1 AND s.version < a.version)
             ORDER BY a.created_at LIMIT $2").await?,
            &[&(profile == Profile::Hardened), &BATCH],
        )
        .await?;
    let mut pushed = 0;
    for r in &rows {
        let (id, status): (String, String) = (r.get(0), r.get(1));
        let version: i32 = r.get(5);
        let body = resource(&id, &status, r.get(2), r.get(3), r.get(4));
        let req = match profile {
            Profile::Naive => http.post(format!("{base}/Appointment")),
            Profile::Hardened => http.put(format!("{base}/Appointment/{id}")),
        };
        match req.json(&body).send().await {
            Ok(resp) if resp.status().is_success() => {
                client
                    .execute(
                        &client.prepare_cached("INSERT INTO ehr_sync (appointment_id, version) VALUES ($1::text::uuid, $2)
                         ON CONFLICT (appointment_id) DO UPDATE SET version = EXCLUDED.version, synced_at = now()").await?,
                        &[&id, &version],
                    )
                    .await?;
                pushed += 1;
            }
            Ok(resp) => tracing::warn!(
                "EHR answered {} for {id}; next round retries",
                resp.status()
            ),
            Err(e) => tracing::warn!("EHR push of {id} failed ({e}); next round retries"),
        }
    }
    Ok(pushed)
}

/// Sync every `period` until the process ends.
pub async fn run(pool: Pool, profile: Profile, base: String, period: Duration) {
    let http = client();
    let base = base.trim_end_matches('/').to_string();
    loop {
        tokio::time::sleep(period).await;
        if let Err(e) = sync_once(&pool, profile, &http, &base).await {
            tracing::warn!("EHR sync: {e}");
        }
    }
}
