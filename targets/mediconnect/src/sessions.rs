//! Sessions. The design keeps them only in a single Redis (000:C1, 001:C-4): `naive` does
//! that, so a Redis outage fails every request (closed) and a restart logs everyone out.
//! `hardened` writes each session to PostgreSQL as well (a session created while Redis is
//! down goes to PostgreSQL only) and reads PostgreSQL when Redis is down or does not know
//! the token (a restarted, empty Redis), putting what it found back into Redis; an unknown
//! token is still refused: authentication fails closed in both profiles.
//!
//! Hardened also bounds every Redis command to 200 ms and, after a failure, leaves Redis
//! alone for a second, so a paused Redis costs a request at most one short wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::Pool;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::Profile;

const SESSION_TTL_SECS: u64 = 3600;
/// Hardened: after a Redis failure, how long requests do without it.
const REDIS_REST_MS: u64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

impl From<tokio_postgres::Error> for SessionError {
    fn from(e: tokio_postgres::Error) -> Self {
        SessionError::Unavailable(e.to_string())
    }
}

#[derive(Clone)]
pub struct Sessions {
    conn: ConnectionManager,
    profile: Profile,
    pool: Pool,
    /// Hardened: Unix ms before which Redis is not asked (it failed just now).
    redis_rest_until: Arc<AtomicU64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Sessions {
    pub fn new(url: &str, profile: Profile, pool: Pool) -> anyhow::Result<Sessions> {
        Ok(Sessions {
            conn: redis_manager(url, profile)?,
            profile,
            pool,
            redis_rest_until: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Whether to ask Redis now (hardened skips it for a while after a failure).
    pub fn redis_usable(&self) -> bool {
        self.profile == Profile::Naive || now_ms() >= self.redis_rest_until.load(Ordering::Relaxed)
    }

    /// Record the outcome of a Redis command.
    pub fn redis_outcome<T, E>(&self, r: &Result<T, E>) {
        if self.profile == Profile::Hardened && r.is_err() {
            self.redis_rest_until
                .store(now_ms() + REDIS_REST_MS, Ordering::Relaxed);
        }
    }

    pub fn redis(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub async fn create(&self, patient: i32) -> Result<String, SessionError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        match self.profile {
            Profile::Naive => {
                let mut c = self.conn.clone();
                let cached: Result<(), _> = c.set_ex(key(&token), patient, SESSION_TTL_SECS).await;
                cached.map_err(|e| SessionError::Unavailable(e.to_string()))?;
            }
            Profile::Hardened => {
                // PostgreSQL is the record; Redis only a cache of it.
                let db = self
                    .pool
                    .get()
                    .await
                    .map_err(|e| SessionError::Unavailable(e.to_string()))?;
                db.execute(
                    &db.prepare_cached(
                        "INSERT INTO sessions (token, patient_id, expires_at)
                     VALUES ($1, $2, now() + make_interval(secs => $3))",
                    )
                    .await?,
                    &[&token, &patient, &(SESSION_TTL_SECS as f64)],
                )
                .await
                .map_err(|e| SessionError::Unavailable(e.to_string()))?;
                self.cache(&token, patient, SESSION_TTL_SECS).await;
            }
        }
        Ok(token)
    }

    /// Hardened: put a session into Redis, if Redis is usable; a failure only costs a cache.
    async fn cache(&self, token: &str, patient: i32, ttl: u64) {
        if !self.redis_usable() || ttl == 0 {
            return;
        }
        let mut c = self.conn.clone();
        let cached: Result<(), _> = c.set_ex(key(token), patient, ttl).await;
        self.redis_outcome(&cached);
        if let Err(e) = cached {
            tracing::warn!("session kept in PostgreSQL only (Redis: {e})");
        }
    }

    /// The patient a token belongs to; `Ok(None)` for an unknown or expired token.
    pub async fn lookup(&self, token: &str) -> Result<Option<i32>, SessionError> {
        let cached: Option<Result<Option<i32>, redis::RedisError>> = if self.redis_usable() {
            let mut c = self.conn.clone();
            let r = c.get(key(token)).await;
            self.redis_outcome(&r);
            Some(r)
        } else {
            None
        };
        match (self.profile, cached) {
            (_, Some(Ok(Some(p)))) => Ok(Some(p)),
            (Profile::Naive, Some(Ok(None))) => Ok(None),
            (Profile::Naive, Some(Err(e))) => Err(SessionError::Unavailable(e.to_string())),
            (Profile::Naive, None) => unreachable!("naive always asks Redis"),
            // Redis lost it (restart) or is down: PostgreSQL decides.
            (Profile::Hardened, cached) => {
                let db = self
                    .pool
                    .get()
                    .await
                    .map_err(|e| SessionError::Unavailable(e.to_string()))?;
                let row = db
                    .query_opt(
                        &db.prepare_cached("SELECT patient_id, greatest(0, extract(epoch FROM expires_at - now()))::bigint FROM sessions WHERE token = $1 AND expires_at > now()").await?,
                        &[&token],
                    )
                    .await
                    .map_err(|e| SessionError::Unavailable(e.to_string()))?;
                let Some(row) = row else { return Ok(None) };
                let (patient, ttl): (i32, i64) = (row.get(0), row.get(1));
                if matches!(cached, Some(Ok(None))) {
                    // Redis answered but had lost it: refill it.
                    self.cache(token, patient, ttl.max(0) as u64).await;
                }
                Ok(Some(patient))
            }
        }
    }

    /// Whether Redis answers a PING now (reported by readiness, which does not depend on it).
    pub async fn ping(&self) -> bool {
        if !self.redis_usable() {
            return false;
        }
        let mut c = self.conn.clone();
        let r = redis::cmd("PING").query_async::<String>(&mut c).await;
        self.redis_outcome(&r);
        r.is_ok()
    }
}

/// A Redis connection that reconnects by itself. Naive: 1 s to connect and to answer (the
/// crate's default 500 ms would fail every command under a latency toxic above it).
/// Hardened: 200 ms for each, no retry inside the command: a request never waits long on
/// a cache.
pub fn redis_manager(url: &str, profile: Profile) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let cfg = match profile {
        Profile::Naive => ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200)),
        Profile::Hardened => ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(200)))
            .set_response_timeout(Some(Duration::from_millis(200)))
            .set_number_of_retries(0)
            .set_max_delay(Duration::from_millis(100)),
    };
    Ok(ConnectionManager::new_lazy_with_config(client, cfg)?)
}

fn key(token: &str) -> String {
    format!("session:{token}")
}
