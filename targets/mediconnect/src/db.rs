//! PostgreSQL: the pool, the migrations (per profile), fixtures, and the booking queries.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::config::Profile;
use crate::schedule::{self, Template};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Query(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        // A closed connection, an IO error or a statement or lock timeout means the database
        // could not serve now; any other error is the query's own.
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        let timed_out = matches!(
            e.code(),
            Some(c) if *c == SqlState::QUERY_CANCELED || *c == SqlState::LOCK_NOT_AVAILABLE
        );
        if e.is_closed() || io || timed_out {
            DbError::Unavailable(e.to_string())
        } else {
            DbError::Query(e)
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

/// Hardened: the longest a statement may run, and the longest it may wait for a lock
/// (002:S-4). A request blocked by a held table lock is refused after `LOCK_TIMEOUT_MS`,
/// well inside a client's 2 s.
pub const STATEMENT_TIMEOUT_MS: u64 = 1000;
pub const LOCK_TIMEOUT_MS: u64 = 250;

/// The connection pool. Naive takes the defaults, as the design specifies none (002:S-2,
/// M-5): a size of four per CPU, no wait timeout (a request waits for a connection as long
/// as it takes), no validation of a connection before reuse, no statement or lock timeout.
/// Hardened: 16 connections, each validated before reuse, a connection waited for at most
/// 500 ms, and PostgreSQL's `statement_timeout` and `lock_timeout`.
pub fn pool(conninfo: &str, profile: Profile) -> anyhow::Result<Pool> {
    let mut pg: tokio_postgres::Config = conninfo.parse()?;
    let pool = match profile {
        Profile::Naive => Pool::builder(Manager::from_config(pg, NoTls, ManagerConfig::default()))
            .runtime(Runtime::Tokio1)
            .build()?,
        Profile::Hardened => {
            pg.connect_timeout(Duration::from_secs(1));
            pg.keepalives_idle(Duration::from_secs(5));
            pg.options(format!(
                "-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={LOCK_TIMEOUT_MS}"
            ));
            let mgr = Manager::from_config(
                pg,
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Verified,
                },
            );
            Pool::builder(mgr)
                .max_size(16)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_millis(500)))
                .create_timeout(Some(Duration::from_secs(1)))
                .recycle_timeout(Some(Duration::from_millis(500)))
                .build()?
        }
    };
    Ok(pool)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS patients (
    id INT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password TEXT NOT NULL,
    phone TEXT NOT NULL,
    email TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS providers (
    id INT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schedule_templates (
    provider_id INT NOT NULL REFERENCES providers(id),
    weekday SMALLINT NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    start_minute INT NOT NULL,
    end_minute INT NOT NULL,
    slot_minutes INT NOT NULL CHECK (slot_minutes > 0),
    PRIMARY KEY (provider_id, weekday)
);
CREATE TABLE IF NOT EXISTS appointments (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id INT NOT NULL REFERENCES patients(id),
    provider_id INT NOT NULL REFERENCES providers(id),
    starts_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL DEFAULT 'booked',
    version INT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Hardened: the trace of the request that booked it (naive leaves it empty).
    trace_id TEXT
);
CREATE INDEX IF NOT EXISTS appointments_by_provider_start ON appointments (provider_id, starts_at);
CREATE INDEX IF NOT EXISTS appointments_by_patient ON appointments (patient_id);
CREATE TABLE IF NOT EXISTS waitlist (
    id BIGSERIAL PRIMARY KEY,
    patient_id INT NOT NULL REFERENCES patients(id),
    provider_id INT NOT NULL REFERENCES providers(id),
    starts_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL DEFAULT 'waiting',
    appointment_id UUID,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ehr_sync (
    appointment_id UUID PRIMARY KEY,
    version INT NOT NULL,
    synced_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS reminder_marks (
    appointment_id UUID NOT NULL,
    kind TEXT NOT NULL,
    marked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (appointment_id, kind)
);
CREATE INDEX IF NOT EXISTS waitlist_by_slot ON waitlist (provider_id, starts_at, id) WHERE status = 'waiting';
";

/// Hardened only (000:S2, 001:C-3, 002:C-4): the database itself refuses a second live
/// appointment in a slot, whatever the application does.
const HARDENED_SCHEMA: &str = "
CREATE UNIQUE INDEX IF NOT EXISTS appointments_one_live_per_slot
    ON appointments (provider_id, starts_at) WHERE status = 'booked';
CREATE TABLE IF NOT EXISTS idempotency_keys (
    patient_id INT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status SMALLINT NOT NULL,
    body JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_id, key)
);
CREATE TABLE IF NOT EXISTS outbox (
    id BIGSERIAL PRIMARY KEY,
    payload JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
-- One row per (reminder, channel): `sending` while a worker holds its lease, then `sent`,
-- `failed` (the provider refused: not sent) or `unknown` (the answer was lost).
-- `maybe_sent`: the provider may have acted, so its log is asked before sending again.
CREATE TABLE IF NOT EXISTS deliveries (
    appointment_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT,
    lease_until TIMESTAMPTZ,
    maybe_sent BOOLEAN NOT NULL DEFAULT false,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (appointment_id, kind, channel)
);
CREATE TABLE IF NOT EXISTS sessions (
    token TEXT PRIMARY KEY,
    patient_id INT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
";

/// Create the schema and fixtures. Replicas may race here: an advisory lock serialises them.
pub async fn migrate(
    pool: &Pool,
    profile: Profile,
    providers: u32,
    patients: u32,
) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // A replica restarted while someone holds a table lock waits for it rather than fail.
    tx.batch_execute("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")
        .await?;
    tx.execute(
        &tx.prepare_cached("SELECT pg_advisory_xact_lock(727272)")
            .await?,
        &[],
    )
    .await?;
    tx.batch_execute(SCHEMA).await?;
    if profile == Profile::Hardened {
        tx.batch_execute(HARDENED_SCHEMA).await?;
    }
    tx.execute(
        &tx.prepare_cached("INSERT INTO providers (id, name) SELECT g, 'Dr. Provider ' || g FROM generate_series(1, $1::int) g
         ON CONFLICT DO NOTHING").await?,
        &[&(providers as i32)],
    )
    .await?;
    tx.execute(
        &tx.prepare_cached("INSERT INTO schedule_templates (provider_id, weekday, start_minute, end_minute, slot_minutes)
         SELECT p, d, $2, $3, $4 FROM generate_series(1, $1::int) p, generate_series(0, 4) d
         ON CONFLICT DO NOTHING").await?,
        &[
            &(providers as i32),
            &schedule::DEFAULT_START_MINUTE,
            &schedule::DEFAULT_END_MINUTE,
            &schedule::DEFAULT_SLOT_MINUTES,
        ],
    )
    .await?;
    tx.execute(
        &tx.prepare_cached("INSERT INTO patients (id, username, password, phone, email)
         SELECT g, 'patient-' || g, 'pw-' || g, '+1555' || lpad(g::text, 7, '0'), 'patient-' || g || '@example.test'
         FROM generate_series(1, $1::int) g ON CONFLICT DO NOTHING").await?,
        &[&(patients as i32)],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn template(
    pool: &Pool,
    provider: i32,
    weekday: i32,
) -> Result<Option<Template>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &client
                .prepare_cached(
                    "SELECT start_minute, end_minute, slot_minutes FROM schedule_templates
             WHERE provider_id = $1 AND weekday = $2",
                )
                .await?,
            &[&provider, &(weekday as i16)],
        )
        .await?;
    Ok(row.map(|r| Template {
        weekday,
        start_minute: r.get(0),
        end_minute: r.get(1),
        slot_minutes: r.get(2),
    }))
}

pub async fn provider_exists(pool: &Pool, provider: i32) -> Result<bool, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query_opt(
            &client
                .prepare_cached("SELECT 1 FROM providers WHERE id = $1")
                .await?,
            &[&provider],
        )
        .await?
        .is_some())
}

/// A provider's weekly templates, Monday first.
pub async fn templates(pool: &Pool, provider: i32) -> Result<Vec<Template>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &client
                .prepare_cached(
                    "SELECT weekday, start_minute, end_minute, slot_minutes FROM schedule_templates
             WHERE provider_id = $1 ORDER BY weekday",
                )
                .await?,
            &[&provider],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Template {
            weekday: i32::from(r.get::<_, i16>(0)),
            start_minute: r.get(1),
            end_minute: r.get(2),
            slot_minutes: r.get(3),
        })
        .collect())
}

/// Replace a provider's weekly templates in one transaction.
pub async fn replace_templates(
    pool: &Pool,
    provider: i32,
    templates: &[Template],
) -> Result<(), DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        &tx.prepare_cached("DELETE FROM schedule_templates WHERE provider_id = $1")
            .await?,
        &[&provider],
    )
    .await?;
    for t in templates {
        tx.execute(
            &tx.prepare_cached("INSERT INTO schedule_templates (provider_id, weekday, start_minute, end_minute, slot_minutes)
             VALUES ($1, $2, $3, $4, $5)").await?,
            &[&provider, &(t.weekday as i16), &t.start_minute, &t.end_minute, &t.slot_minutes],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The free slots of a provider on the UTC day starting at `day`, in one set-based query:
/// the day's template expanded by generate_series, minus live appointments found through
/// the (provider_id, starts_at) index (002 C-1, C-3).
pub async fn free_slots(pool: &Pool, provider: i32, day: i64) -> Result<Vec<i64>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &client.prepare_cached("SELECT extract(epoch FROM s)::bigint
             FROM schedule_templates t,
                  generate_series(to_timestamp($2) + t.start_minute * interval '1 minute',
                                  to_timestamp($2) + (t.end_minute - t.slot_minutes) * interval '1 minute',
                                  t.slot_minutes * interval '1 minute') AS s
             WHERE t.provider_id = $1 AND t.weekday = $3
               AND NOT EXISTS (SELECT 1 FROM appointments a
                               WHERE a.provider_id = $1 AND a.starts_at = s AND a.status = 'booked')
             ORDER BY s").await?,
            &[&provider, &(day as f64), &(schedule::weekday(day) as i16)],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Naive: the free slots of a provider on the UTC day starting at `day` under a template the
/// caller holds (its cache), in one set-based query.
pub async fn free_slots_under(
    pool: &Pool,
    provider: i32,
    day: i64,
    t: &Template,
) -> Result<Vec<i64>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &client
                .prepare_cached(
                    "SELECT extract(epoch FROM s)::bigint
             FROM generate_series(to_timestamp($2) + make_interval(mins => $3::int),
                                  to_timestamp($2) + make_interval(mins => $4::int - $5::int),
                                  make_interval(mins => $5::int)) AS s
             WHERE NOT EXISTS (SELECT 1 FROM appointments a
                               WHERE a.provider_id = $1 AND a.starts_at = s AND a.status = 'booked')
             ORDER BY s",
                )
                .await?,
            &[
                &provider,
                &(day as f64),
                &t.start_minute,
                &t.end_minute,
                &t.slot_minutes,
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A patient's phone and e-mail address.
pub async fn patient_contact(
    pool: &Pool,
    patient: i32,
) -> Result<Option<(String, String)>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query_opt(
            &client
                .prepare_cached("SELECT phone, email FROM patients WHERE id = $1")
                .await?,
            &[&patient],
        )
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

pub async fn login(pool: &Pool, username: &str, password: &str) -> Result<Option<i32>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query_opt(
            &client
                .prepare_cached("SELECT id FROM patients WHERE username = $1 AND password = $2")
                .await?,
            &[&username, &password],
        )
        .await?
        .map(|r| r.get(0)))
}
