//! Per-user rate limiting in Redis (100 requests a minute by default, as in the design): a
//! counter per user per minute. When Redis cannot be reached the limiter lets requests
//! through (fails open): limiting is protection, not authentication.

use crate::sessions::Sessions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Over the limit; retry after this many seconds (the rest of the minute).
    Limited {
        retry_after: u64,
    },
}

pub async fn check(sessions: &Sessions, patient: i32, per_minute: u32) -> Decision {
    if !sessions.redis_usable() {
        return Decision::Allow;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let minute = now / 60;
    let key = format!("ratelimit:{patient}:{minute}");
    let mut c = sessions.redis();
    let counted: Result<(u64, bool), _> = redis::pipe()
        .atomic()
        .incr(&key, 1u64)
        .expire(&key, 61)
        .query_async(&mut c)
        .await;
    sessions.redis_outcome(&counted);
    match counted {
        Ok((n, _)) if n > u64::from(per_minute) => Decision::Limited {
            retry_after: 60 - now % 60,
        },
        Ok(_) => Decision::Allow,
        Err(e) => {
            tracing::warn!("rate limiter unavailable, allowing: {e}");
            Decision::Allow
        }
    }
}
