//! EHR sync: pushes appointments to the EHR's FHIR API in batches.
//!
//! `naive` (000:S7, 001:C-2, 000:S1): creates each one with POST and a 2 s timeout and
//! retries whatever did not go through on the next round, every round, however long the EHR
//! has been failing: a slow EHR ends up with two resources for one appointment, a failing one
//! is hammered with the whole backlog every second. `hardened` upserts with PUT to the
//! appointment's own id (a retry overwrites instead of duplicating), pushes status changes
//! (cancellations), and stops pushing at a failing EHR: a circuit breaker opens after three
//! failed pushes in a row and lets one trial through after an open time that doubles, with
//! jitter, up to 16 s; the least recently tried appointment goes first, so the trial is not
//! always the same one. Each push carries the `traceparent` of the request that booked the
//! appointment (000:C13).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use serde_json::json;

use crate::breaker::Breakers;
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

/// What one sync loop remembers between rounds.
pub struct Sync {
    pub profile: Profile,
    pub http: reqwest::Client,
    pub base: String,
    pub breakers: Arc<Breakers>,
    /// Hardened: when each appointment not yet synced was last tried.
    tried: HashMap<String, Instant>,
}

impl Sync {
    pub fn new(profile: Profile, base: &str, breakers: Arc<Breakers>) -> Sync {
        Sync {
            profile,
            http: client(),
            base: base.trim_end_matches('/').to_string(),
            breakers,
            tried: HashMap::new(),
        }
    }

    fn breaker_allows(&self) -> bool {
        self.profile == Profile::Naive
            || self
                .breakers
                .ehr
                .lock()
                .expect("breaker lock poisoned")
                .try_acquire()
    }

    fn breaker_record(&self, ok: bool) {
        if self.profile == Profile::Hardened {
            self.breakers
                .ehr
                .lock()
                .expect("breaker lock poisoned")
                .record(ok);
        }
    }

    /// One round: push what the EHR has not seen in its current state. Returns how many went.
    pub async fn sync_once(&mut self, pool: &Pool) -> Result<usize, DbError> {
        let hardened = self.profile == Profile::Hardened;
        let client = pool.get().await?;
        let sql = if hardened {
            "SELECT a.id::text, a.status, extract(epoch FROM a.starts_at)::bigint, a.patient_id, a.provider_id, a.version, a.trace_id
             FROM appointments a LEFT JOIN ehr_sync s ON s.appointment_id = a.id
             WHERE s.appointment_id IS NULL OR s.version < a.version
             ORDER BY a.created_at LIMIT $1"
        } else {
            "SELECT a.id::text, a.status, extract(epoch FROM a.starts_at)::bigint, a.patient_id, a.provider_id, a.version, NULL::text
             FROM appointments a LEFT JOIN ehr_sync s ON s.appointment_id = a.id
             WHERE s.appointment_id IS NULL
             ORDER BY a.created_at LIMIT $1"
        };
        let mut rows = client
            .query(&client.prepare_cached(sql).await?, &[&BATCH])
            .await?;
        if hardened {
            // Never tried first, then the least recently tried.
            rows.sort_by_key(|r| self.tried.get(&r.get::<_, String>(0)).copied());
            let pending: std::collections::HashSet<String> =
                rows.iter().map(|r| r.get(0)).collect();
            self.tried.retain(|id, _| pending.contains(id));
        }
        let mut pushed = 0;
        for r in &rows {
            if !self.breaker_allows() {
                tracing::debug!("EHR circuit open; the rest waits for a later round");
                break;
            }
            let (id, status): (String, String) = (r.get(0), r.get(1));
            let version: i32 = r.get(5);
            let trace: Option<String> = r.get(6);
            let body = resource(&id, &status, r.get(2), r.get(3), r.get(4));
            let mut req = if hardened {
                self.http.put(format!("{}/Appointment/{id}", self.base))
            } else {
                self.http.post(format!("{}/Appointment", self.base))
            };
            if let Some(t) = &trace {
                req = req.header("traceparent", crate::trace::child(t));
            }
            if hardened {
                self.tried.insert(id.clone(), Instant::now());
            }
            let ok = match req.json(&body).send().await {
                Ok(resp) if resp.status().is_success() => true,
                Ok(resp) => {
                    tracing::warn!(
                        "EHR answered {} for {id}; a later round retries",
                        resp.status()
                    );
                    false
                }
                Err(e) => {
                    tracing::warn!("EHR push of {id} failed ({e}); a later round retries");
                    false
                }
            };
            self.breaker_record(ok);
            if ok {
                client
                    .execute(
                        &client.prepare_cached("INSERT INTO ehr_sync (appointment_id, version) VALUES ($1::text::uuid, $2)
                         ON CONFLICT (appointment_id) DO UPDATE SET version = EXCLUDED.version, synced_at = now()").await?,
                        &[&id, &version],
                    )
                    .await?;
                self.tried.remove(&id);
                pushed += 1;
            }
        }
        Ok(pushed)
    }
}

/// Sync every `period` until the process ends.
pub async fn run(
    pool: Pool,
    profile: Profile,
    base: String,
    period: Duration,
    breakers: Arc<Breakers>,
) {
    let mut sync = Sync::new(profile, &base, breakers);
    loop {
        tokio::time::sleep(period).await;
        if let Err(e) = sync.sync_once(&pool).await {
            tracing::warn!("EHR sync: {e}");
        }
    }
}
