//! Sessions. The design keeps them only in a single Redis (000:C1, 001:C-4): `naive` does
//! that, so a Redis outage fails every request (closed) and a restart logs everyone out.
//! `hardened` writes each session through to PostgreSQL as well and falls back to it when
//! Redis is down or has lost the session; an unknown token is still refused: authentication
//! fails closed in both profiles.

use std::time::Duration;

use deadpool_postgres::Pool;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::Profile;

const SESSION_TTL_SECS: u64 = 3600;

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
}

impl Sessions {
    pub fn new(url: &str, profile: Profile, pool: Pool) -> anyhow::Result<Sessions> {
        Ok(Sessions {
            conn: redis_manager(url)?,
            profile,
            pool,
        })
    }

    pub fn redis(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub async fn create(&self, patient: i32) -> Result<String, SessionError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut c = self.conn.clone();
        let cached: Result<(), _> = c.set_ex(key(&token), patient, SESSION_TTL_SECS).await;
        match self.profile {
            Profile::Naive => cached.map_err(|e| SessionError::Unavailable(e.to_string()))?,
            Profile::Hardened => {
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
                if let Err(e) = cached {
                    tracing::warn!("session cached in PostgreSQL only (Redis: {e})");
                }
            }
        }
        Ok(token)
    }

    /// The patient a token belongs to; `Ok(None)` for an unknown or expired token.
    pub async fn lookup(&self, token: &str) -> Result<Option<i32>, SessionError> {
        let mut c = self.conn.clone();
        let cached: Result<Option<i32>, _> = c.get(key(token)).await;
        match (self.profile, cached) {
            (_, Ok(Some(p))) => Ok(Some(p)),
            (Profile::Naive, Ok(None)) => Ok(None),
            (Profile::Naive, Err(e)) => Err(SessionError::Unavailable(e.to_string())),
            // Redis lost it (restart) or is down: PostgreSQL decides.
            (Profile::Hardened, _) => {
                let db = self
                    .pool
                    .get()
                    .await
                    .map_err(|e| SessionError::Unavailable(e.to_string()))?;
                let row = db
                    .query_opt(
                        &db.prepare_cached("SELECT patient_id FROM sessions WHERE token = $1 AND expires_at > now()").await?,
                        &[&token],
                    )
                    .await
                    .map_err(|e| SessionError::Unavailable(e.to_string()))?;
                Ok(row.map(|r| r.get(0)))
            }
        }
    }

    pub async fn ping(&self) -> bool {
        let mut c = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .is_ok()
    }
}

/// A Redis connection that reconnects by itself. The crate's default response timeout
/// (500 ms) would fail every command under a latency toxic above it; 1 s keeps a bound
/// without hiding moderate slowness.
pub fn redis_manager(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let cfg = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    Ok(ConnectionManager::new_lazy_with_config(client, cfg)?)
}

fn key(token: &str) -> String {
    format!("session:{token}")
}
