//! Schedule templates as the request path reads them (002:C-5). Naive caches each
//! provider's weekly template in the replica for ten minutes and never invalidates it: after
//! `PUT /providers/{id}/schedule` a replica holding the old template keeps accepting
//! bookings in removed hours and listing them as available. Hardened keeps no cache: every
//! request reads the template PostgreSQL holds, so a change counts from the moment it was
//! acknowledged, on every replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;

use crate::config::Profile;
use crate::db::{self, DbError};
use crate::schedule::Template;

/// How long naive trusts a cached template ("schedules rarely change").
const TTL: Duration = Duration::from_secs(600);

/// Provider -> (loaded at, its weekly templates).
type Cache = HashMap<i32, (Instant, Vec<Template>)>;

#[derive(Debug, Default)]
pub struct Templates {
    /// Naive only.
    cache: Option<Mutex<Cache>>,
}

impl Templates {
    pub fn new(profile: Profile) -> Templates {
        Templates {
            cache: (profile == Profile::Naive).then(Mutex::default),
        }
    }

    /// The provider's template for one weekday.
    pub async fn for_weekday(
        &self,
        pool: &Pool,
        provider: i32,
        weekday: i32,
    ) -> Result<Option<Template>, DbError> {
        let Some(cache) = &self.cache else {
            return db::template(pool, provider, weekday).await;
        };
        let hit = cache
            .lock()
            .expect("template cache lock poisoned")
            .get(&provider)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, all)| all.iter().find(|t| t.weekday == weekday).copied());
        if let Some(found) = hit {
            return Ok(found);
        }
        let all = db::templates(pool, provider).await?;
        let found = all.iter().find(|t| t.weekday == weekday).copied();
        cache
            .lock()
            .expect("template cache lock poisoned")
            .insert(provider, (Instant::now(), all));
        Ok(found)
    }

    /// Whether free slots should be computed from a cached template (naive) rather than
    /// from the table in the same query (hardened).
    pub fn caches(&self) -> bool {
        self.cache.is_some()
    }
}
