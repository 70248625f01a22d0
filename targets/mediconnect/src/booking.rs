//! Appointments in both profiles: book, book with an idempotency key, cancel (with waitlist
//! auto-rebooking), reschedule, join the waitlist.
//!
//! `naive` is the design as reviewed: every step is its own statement, checked before it
//! acts, with no transaction and no constraint (000:S2, 001:C-3, 002:C-4). `hardened` puts
//! each operation in one transaction and lets the database's partial unique index on live
//! appointments decide every race.

use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use tokio_postgres::error::SqlState;

use crate::config::Profile;
use crate::db::DbError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Appointment {
    pub id: String,
    pub patient_id: i32,
    pub provider_id: i32,
    /// Slot start, Unix seconds.
    pub start: i64,
    pub status: String,
    pub version: i32,
}

const APPOINTMENT_COLUMNS: &str =
    "id::text, patient_id, provider_id, extract(epoch FROM starts_at)::bigint, status, version";

fn appointment(r: &tokio_postgres::Row) -> Appointment {
    Appointment {
        id: r.get(0),
        patient_id: r.get(1),
        provider_id: r.get(2),
        start: r.get(3),
        status: r.get(4),
        version: r.get(5),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Booked {
    Created(Appointment),
    SlotTaken,
}

/// Book a slot. `trace` (hardened) is stored with the appointment, so its confirmation and
/// its EHR pushes carry the trace of the request that booked it.
pub async fn book(
    pool: &Pool,
    profile: Profile,
    patient: i32,
    provider: i32,
    start: i64,
    trace: Option<&str>,
) -> Result<Booked, DbError> {
    let client = pool.get().await?;
    match profile {
        Profile::Naive => {
            let taken = slot_taken(&client, provider, start).await?;
            if taken {
                return Ok(Booked::SlotTaken);
            }
            let row = client
                .query_one(
                    &client.prepare_cached(&format!(
                        "INSERT INTO appointments (patient_id, provider_id, starts_at) VALUES ($1, $2, to_timestamp($3))
                         RETURNING {APPOINTMENT_COLUMNS}"
                    )).await?,
                    &[&patient, &provider, &(start as f64)],
                )
                .await?;
            Ok(Booked::Created(appointment(&row)))
        }
        Profile::Hardened => insert_if_free(&client, patient, provider, start, trace).await,
    }
}

/// Whether a slot has a live appointment: the naive profile's check before it acts.
async fn slot_taken<C: GenericClient>(c: &C, provider: i32, start: i64) -> Result<bool, DbError> {
    Ok(c
        .query_one(
            &c.prepare_cached("SELECT EXISTS (SELECT 1 FROM appointments
                            WHERE provider_id = $1 AND starts_at = to_timestamp($2) AND status = 'booked')").await?,
            &[&provider, &(start as f64)],
        )
        .await?
        .get(0))
}

/// Hardened: insert a live appointment unless the slot has one (the unique index decides),
/// with its confirmation reminder in the outbox, in the caller's transaction.
async fn insert_if_free<C: GenericClient>(
    c: &C,
    patient: i32,
    provider: i32,
    start: i64,
    trace: Option<&str>,
) -> Result<Booked, DbError> {
    // One statement, so atomic on its own: the confirmation commits with the booking (the
    // transactional outbox) in a single round trip.
    let sql = format!(
        "WITH a AS (
             INSERT INTO appointments (patient_id, provider_id, starts_at, trace_id) VALUES ($1, $3, to_timestamp($4), $5)
             ON CONFLICT (provider_id, starts_at) WHERE status = 'booked' DO NOTHING
             RETURNING *),
         o AS (
             INSERT INTO outbox (payload) SELECT {} FROM a JOIN patients p ON p.id = a.patient_id)
         SELECT {APPOINTMENT_COLUMNS} FROM a",
        crate::outbox::PAYLOAD
    );
    let row = c
        .query_opt(
            &c.prepare_cached(&sql).await?,
            &[
                &patient,
                &"confirmation",
                &provider,
                &(start as f64),
                &trace,
            ],
        )
        .await?;
    Ok(row.map_or(Booked::SlotTaken, |row| Booked::Created(appointment(&row))))
}

/// A stored answer to a request made with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub status: u16,
    pub body: serde_json::Value,
    /// True when this is the answer to an earlier request, replayed.
    pub replayed: bool,
}

#[derive(Debug, PartialEq)]
pub enum Keyed {
    Answer(Stored),
    /// The key was used before for a different request.
    KeyReused,
}

/// Hardened creation with an idempotency key (000:C5, 001:C-1): the booking and the stored
/// answer commit together, so a retry gets the first answer and never a second appointment.
/// `(key, request_hash)` are the key and what the request asked for; `answer` turns the
/// booking outcome into the HTTP status and body to store.
pub async fn book_idempotent(
    pool: &Pool,
    patient: i32,
    (key, request_hash): (&str, &str),
    provider: i32,
    start: i64,
    trace: Option<&str>,
    answer: impl Fn(&Booked) -> (u16, serde_json::Value),
) -> Result<(Keyed, Option<Appointment>), DbError> {
    // Two attempts: a concurrent request with the same key may commit between our look-up
    // and our insert; the second attempt then finds its stored answer.
    for _ in 0..2 {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        if let Some(found) = stored(&tx, patient, key, request_hash).await? {
            tx.commit().await?;
            return Ok((found, None));
        }
        let booked = insert_if_free(&tx, patient, provider, start, trace).await?;
        let (status, body) = answer(&booked);
        let saved = tx
            .execute(
                &tx.prepare_cached("INSERT INTO idempotency_keys (patient_id, key, request_hash, status, body) VALUES ($1, $2, $3, $4, $5)").await?,
                &[&patient, &key, &request_hash, &(status as i16), &body],
            )
            .await;
        match saved {
            Ok(_) => {
                tx.commit().await?;
                let created = match booked {
                    Booked::Created(a) => Some(a),
                    Booked::SlotTaken => None,
                };
                return Ok((
                    Keyed::Answer(Stored {
                        status,
                        body,
                        replayed: false,
                    }),
                    created,
                ));
            }
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                tx.rollback().await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(DbError::Unavailable(
        "idempotency key contended twice".into(),
    ))
}

async fn stored<C: GenericClient>(
    c: &C,
    patient: i32,
    key: &str,
    request_hash: &str,
) -> Result<Option<Keyed>, DbError> {
    let row = c
        .query_opt(
            &c.prepare_cached("SELECT request_hash, status, body FROM idempotency_keys WHERE patient_id = $1 AND key = $2").await?,
            &[&patient, &key],
        )
        .await?;
    Ok(row.map(|r| {
        let hash: String = r.get(0);
        if hash != request_hash {
            Keyed::KeyReused
        } else {
            let status: i16 = r.get(1);
            Keyed::Answer(Stored {
                status: status as u16,
                body: r.get(2),
                replayed: true,
            })
        }
    }))
}

pub async fn get(pool: &Pool, patient: i32, id: &str) -> Result<Option<Appointment>, DbError> {
    let Ok(uuid) = id.parse::<uuid::Uuid>() else {
        return Ok(None);
    };
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &client.prepare_cached(&format!(
                "SELECT {APPOINTMENT_COLUMNS} FROM appointments WHERE id = $1 AND patient_id = $2"
            )).await?,
            &[&uuid, &patient],
        )
        .await?;
    Ok(row.as_ref().map(appointment))
}

#[derive(Debug, PartialEq)]
pub enum Cancelled {
    Done {
        appointment: Appointment,
        rebooked: Option<Appointment>,
    },
    NotFound,
    NotBooked,
}

/// Cancel a patient's appointment and give the slot to the first patient on its waitlist.
/// A promotion's appointment carries `trace`, the cancelling request's.
pub async fn cancel(
    pool: &Pool,
    profile: Profile,
    patient: i32,
    id: &str,
    trace: Option<&str>,
) -> Result<Cancelled, DbError> {
    let Ok(uuid) = id.parse::<uuid::Uuid>() else {
        return Ok(Cancelled::NotFound);
    };
    let mut client = pool.get().await?;
    match profile {
        Profile::Naive => {
            let Some(current) = get(pool, patient, id).await? else {
                return Ok(Cancelled::NotFound);
            };
            if current.status != "booked" {
                return Ok(Cancelled::NotBooked);
            }
            let row = client
                .query_one(
                    &client.prepare_cached(&format!(
                        "UPDATE appointments SET status = 'cancelled', version = version + 1 WHERE id = $1
                         RETURNING {APPOINTMENT_COLUMNS}"
                    )).await?,
                    &[&uuid],
                )
                .await?;
            let cancelled = appointment(&row);
            drop(client);
            let rebooked = naive_promote(pool, cancelled.provider_id, cancelled.start).await?;
            Ok(Cancelled::Done {
                appointment: cancelled,
                rebooked,
            })
        }
        Profile::Hardened => {
            let tx = client.transaction().await?;
            let row = tx
                .query_opt(
                    &tx.prepare_cached(&format!(
                        "UPDATE appointments SET status = 'cancelled', version = version + 1
                         WHERE id = $1 AND patient_id = $2 AND status = 'booked'
                         RETURNING {APPOINTMENT_COLUMNS}"
                    ))
                    .await?,
                    &[&uuid, &patient],
                )
                .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Ok(match get(pool, patient, id).await? {
                    None => Cancelled::NotFound,
                    Some(_) => Cancelled::NotBooked,
                });
            };
            let cancelled = appointment(&row);
            let rebooked =
                promote_waitlist(&tx, cancelled.provider_id, cancelled.start, trace).await?;
            tx.commit().await?;
            Ok(Cancelled::Done {
                appointment: cancelled,
                rebooked,
            })
        }
    }
}

/// Naive auto-rebooking as its own steps: take the first waiting patient, check the slot,
/// insert. Nothing stops two cancellations (or a booking) racing here.
async fn naive_promote(
    pool: &Pool,
    provider: i32,
    start: i64,
) -> Result<Option<Appointment>, DbError> {
    let client = pool.get().await?;
    let next = client
        .query_opt(
            &client
                .prepare_cached(
                    "SELECT id, patient_id FROM waitlist
             WHERE provider_id = $1 AND starts_at = to_timestamp($2) AND status = 'waiting'
             ORDER BY id LIMIT 1",
                )
                .await?,
            &[&provider, &(start as f64)],
        )
        .await?;
    let Some(w) = next else { return Ok(None) };
    let (wid, wpatient): (i64, i32) = (w.get(0), w.get(1));
    let Booked::Created(a) = book(pool, Profile::Naive, wpatient, provider, start, None).await?
    else {
        return Ok(None);
    };
    client
        .execute(
            &client.prepare_cached("UPDATE waitlist SET status = 'booked', appointment_id = $2::text::uuid WHERE id = $1").await?,
            &[&wid, &a.id],
        )
        .await?;
    Ok(Some(a))
}

/// In the caller's transaction: book the slot for the first waiting patient, skipping
/// waitlist rows another transaction holds.
async fn promote_waitlist<C: GenericClient>(
    c: &C,
    provider: i32,
    start: i64,
    trace: Option<&str>,
) -> Result<Option<Appointment>, DbError> {
    let next = c
        .query_opt(
            &c.prepare_cached(
                "SELECT id, patient_id FROM waitlist
             WHERE provider_id = $1 AND starts_at = to_timestamp($2) AND status = 'waiting'
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .await?,
            &[&provider, &(start as f64)],
        )
        .await?;
    let Some(w) = next else { return Ok(None) };
    let (wid, wpatient): (i64, i32) = (w.get(0), w.get(1));
    match insert_if_free(c, wpatient, provider, start, trace).await? {
        Booked::Created(a) => {
            c.execute(
                &c.prepare_cached("UPDATE waitlist SET status = 'booked', appointment_id = $2::text::uuid WHERE id = $1").await?,
                &[&wid, &a.id],
            )
            .await?;
            Ok(Some(a))
        }
        Booked::SlotTaken => Ok(None),
    }
}

#[derive(Debug, PartialEq)]
pub enum Rescheduled {
    Done {
        appointment: Appointment,
        /// The appointment the freed slot's waitlist promotion booked, if any.
        rebooked: Option<Appointment>,
    },
    NotBooked,
    SlotTaken,
    /// Hardened: another change of the appointment committed since `current` was read.
    VersionConflict,
}

/// Move a patient's appointment, read as `current`, to another slot, and give the freed slot
/// to the first patient on its waitlist.
///
/// Naive is what an ORM without optimistic locking does: a read-modify-write that writes the
/// version it computed from its read (`current.version + 1`), so two concurrent reschedules
/// both succeed with the same version and the first move is lost without anyone being told.
/// Hardened updates only the version it read (optimistic locking): the loser is told
/// `VersionConflict`.
pub async fn reschedule(
    pool: &Pool,
    profile: Profile,
    current: &Appointment,
    start: i64,
    trace: Option<&str>,
) -> Result<Rescheduled, DbError> {
    let uuid: uuid::Uuid = current
        .id
        .parse()
        .expect("an appointment read from the database has a UUID");
    if current.status != "booked" {
        return Ok(Rescheduled::NotBooked);
    }
    let mut client = pool.get().await?;
    match profile {
        Profile::Naive => {
            let taken = slot_taken(&client, current.provider_id, start).await?;
            if taken {
                return Ok(Rescheduled::SlotTaken);
            }
            let row = client
                .query_one(
                    &client.prepare_cached(&format!(
                        "UPDATE appointments SET starts_at = to_timestamp($2), version = $3 WHERE id = $1
                         RETURNING {APPOINTMENT_COLUMNS}"
                    )).await?,
                    &[&uuid, &(start as f64), &(current.version + 1)],
                )
                .await?;
            let moved = appointment(&row);
            drop(client);
            let rebooked = naive_promote(pool, current.provider_id, current.start).await?;
            Ok(Rescheduled::Done {
                appointment: moved,
                rebooked,
            })
        }
        Profile::Hardened => {
            let tx = client.transaction().await?;
            // Optimistic lock on the version read; the unique index guards the slot.
            let moved = tx
                .query_opt(
                    &tx.prepare_cached(&format!(
                        "UPDATE appointments SET starts_at = to_timestamp($3), version = version + 1
                         WHERE id = $1 AND version = $2 AND status = 'booked'
                         RETURNING {APPOINTMENT_COLUMNS}"
                    ))
                    .await?,
                    &[&uuid, &current.version, &(start as f64)],
                )
                .await;
            let row = match moved {
                Ok(Some(r)) => r,
                Ok(None) => {
                    // Someone changed it since our read: cancelled it, or moved it first.
                    let now = tx
                        .query_opt(
                            &tx.prepare_cached("SELECT status FROM appointments WHERE id = $1")
                                .await?,
                            &[&uuid],
                        )
                        .await?;
                    tx.rollback().await?;
                    return Ok(match now {
                        Some(r) if r.get::<_, String>(0) == "booked" => {
                            Rescheduled::VersionConflict
                        }
                        _ => Rescheduled::NotBooked,
                    });
                }
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    tx.rollback().await?;
                    return Ok(Rescheduled::SlotTaken);
                }
                Err(e) => return Err(e.into()),
            };
            let moved = appointment(&row);
            let rebooked = promote_waitlist(&tx, current.provider_id, current.start, trace).await?;
            tx.commit().await?;
            Ok(Rescheduled::Done {
                appointment: moved,
                rebooked,
            })
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum Waitlisted {
    Joined(i64),
    /// The slot is free: book it instead.
    SlotFree,
}

pub async fn join_waitlist(
    pool: &Pool,
    patient: i32,
    provider: i32,
    start: i64,
) -> Result<Waitlisted, DbError> {
    let client = pool.get().await?;
    let taken = slot_taken(&client, provider, start).await?;
    if !taken {
        return Ok(Waitlisted::SlotFree);
    }
    let row = client
        .query_one(
            &client.prepare_cached("INSERT INTO waitlist (patient_id, provider_id, starts_at) VALUES ($1, $2, to_timestamp($3)) RETURNING id").await?,
            &[&patient, &provider, &(start as f64)],
        )
        .await?;
    Ok(Waitlisted::Joined(row.get(0)))
}
