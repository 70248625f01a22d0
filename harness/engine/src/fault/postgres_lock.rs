//! Postgres lock: the harness opens its own connection to PostgreSQL (not through the
//! proxy), begins a transaction and takes `LOCK TABLE <table> IN <mode> MODE`, so the
//! target's queries on that table hang behind it (002:S-4); heal: roll back and close.

use std::time::Duration;

use chaos_model::TableLock;

use super::Injected;
use crate::env::Env;
use crate::error::EngineError;

/// A lock held on an open transaction of the harness's own connection.
#[derive(Debug)]
pub struct HeldLock {
    table: String,
    client: tokio_postgres::Client,
    connection: tokio::task::JoinHandle<()>,
}

/// How long taking the lock may wait for the target's own transactions to finish.
const ACQUIRE: Duration = Duration::from_secs(5);

pub(super) async fn inject(env: &Env, lock: &TableLock) -> Result<Injected, EngineError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        EngineError::Other(format!("lock {}: {what}: {e}", lock.table))
    };
    let (client, conn) = tokio::time::timeout(
        ACQUIRE,
        tokio_postgres::connect(&env.endpoints().postgres_direct, tokio_postgres::NoTls),
    )
    .await
    .map_err(|e| fail("connect", &e))?
    .map_err(|e| fail("connect", &e))?;
    let connection = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!("the lock's connection ended: {e}");
        }
    });
    // The table name is one of the model's known tables (validated), never user text.
    let sql = format!(
        "SET lock_timeout = '{}ms'; BEGIN; LOCK TABLE {} IN {} MODE;",
        ACQUIRE.as_millis(),
        lock.table,
        lock.mode.sql()
    );
    if let Err(e) = client.batch_execute(&sql).await {
        connection.abort();
        return Err(fail("take", &e));
    }
    Ok(Injected::Locked(HeldLock {
        table: lock.table.clone(),
        client,
        connection,
    }))
}

pub(super) async fn heal(held: HeldLock) -> Result<(), EngineError> {
    let r = tokio::time::timeout(ACQUIRE, held.client.batch_execute("ROLLBACK")).await;
    drop(held.client);
    // Closing the connection ends the transaction too, whether or not ROLLBACK answered.
    let mut connection = held.connection;
    if tokio::time::timeout(ACQUIRE, &mut connection)
        .await
        .is_err()
    {
        connection.abort();
        tracing::warn!("the lock's connection did not close within {ACQUIRE:?}: dropped");
    }
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(EngineError::Other(format!("unlock {}: {e}", held.table))),
        Err(_) => Err(EngineError::Other(format!(
            "unlock {}: ROLLBACK not answered within {ACQUIRE:?}",
            held.table
        ))),
    }
}
