//! The `mediconnect` binary: migrate, start the API and the notification worker, print the
//! bound address as one JSON line on stdout (the readiness signal), serve. Naive ends when a
//! signal kills it; hardened stops gracefully on SIGTERM (see `serve_hardened`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use mediconnect::api::{AppState, router};
use mediconnect::breaker::Breakers;
use mediconnect::broker::Broker;
use mediconnect::health::{self, Health};
use mediconnect::metrics::Metrics;
use mediconnect::sessions::Sessions;
use mediconnect::templates::Templates;
use mediconnect::{Config, Profile, db, ehr, outbox, reminders, worker};

/// Hardened: from SIGTERM to exit, at most this long.
const STOP_WITHIN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cfg = Config::parse();
    let pool = db::pool(&cfg.postgres, cfg.profile)?;
    migrate(&pool, &cfg).await?;
    let broker = Arc::new(Broker::new(&cfg.amqp, cfg.profile));
    let health = Arc::new(Health::default());
    let breakers = Arc::new(Breakers::default());
    let outbox_pending = Arc::new(AtomicU64::new(0));
    let state = Arc::new(AppState {
        profile: cfg.profile,
        sessions: Sessions::new(&cfg.redis, cfg.profile, pool.clone())?,
        pool,
        broker: Arc::clone(&broker),
        metrics: Metrics::default(),
        rate_limit: cfg.rate_limit,
        max_in_flight: cfg.max_in_flight,
        in_flight: AtomicUsize::new(0),
        health: Arc::clone(&health),
        breakers: Arc::clone(&breakers),
        outbox_pending: Arc::clone(&outbox_pending),
        templates: Templates::new(cfg.profile),
    });
    let hardened = cfg.profile == Profile::Hardened;
    // Turned true on SIGTERM (hardened): the worker drains and stops.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker_task = cfg.worker.then(|| {
        let senders = worker::Senders::new(
            cfg.profile,
            &cfg.twilio,
            &cfg.sendgrid,
            state.pool.clone(),
            Arc::clone(&broker),
            Arc::clone(&breakers),
        );
        tokio::spawn(worker::run(cfg.amqp.clone(), Arc::new(senders), stop_rx))
    });
    if cfg.poll_ms > 0 {
        tokio::spawn(reminders::run(
            state.pool.clone(),
            cfg.profile,
            Arc::clone(&broker),
            cfg.clock(),
            Duration::from_millis(cfg.poll_ms),
        ));
    }
    if cfg.ehr_sync_ms > 0 {
        tokio::spawn(ehr::run(
            state.pool.clone(),
            cfg.profile,
            cfg.ehr.clone(),
            Duration::from_millis(cfg.ehr_sync_ms),
            Arc::clone(&breakers),
        ));
    }
    if hardened {
        tokio::spawn(outbox::run_relay(state.pool.clone(), Arc::clone(&broker)));
        tokio::spawn(outbox::run_gauge(state.pool.clone(), outbox_pending));
        tokio::spawn(health::run_probe(cfg.postgres.clone(), Arc::clone(&health)));
    }
    // Hardened handles SIGTERM itself; installed before the ready line so none is missed.
    let term = if hardened {
        Some(tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        )?)
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("bind {}", cfg.listen))?;
    println!(
        "{}",
        serde_json::json!({ "listen": listener.local_addr()?.to_string() })
    );
    let Some(mut term) = term else {
        // Naive: serve until a signal's default action ends the process, as the design has
        // no shutdown handling: in-flight requests and deliveries are cut off.
        axum::serve(listener, router(state)).await?;
        return Ok(());
    };
    // Hardened graceful stop: on SIGTERM readiness turns 503 and new requests are refused,
    // the listener closes, in-flight requests and deliveries finish (bounded), the worker
    // hands back its claims and closes its broker connection, then exit 0.
    let (signalled_tx, signalled) = tokio::sync::oneshot::channel::<Instant>();
    let server = axum::serve(listener, router(Arc::clone(&state))).with_graceful_shutdown({
        let health = Arc::clone(&health);
        async move {
            term.recv().await;
            tracing::info!("SIGTERM: stopping");
            health.start_draining();
            let _ = stop_tx.send(true);
            let _ = signalled_tx.send(Instant::now());
        }
    });
    let server = tokio::spawn(async move { server.await });
    let Ok(at) = signalled.await else {
        // The server ended without a signal.
        return server.await?.map_err(Into::into);
    };
    let deadline = tokio::time::Instant::from_std(at + STOP_WITHIN);
    if tokio::time::timeout_at(deadline, server).await.is_err() {
        tracing::warn!("requests still in flight at the stop deadline");
    }
    if let Some(w) = worker_task
        && tokio::time::timeout_at(deadline, w).await.is_err()
    {
        tracing::warn!("the notification worker did not stop in time");
    }
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    broker.close(left.min(Duration::from_millis(500))).await;
    tracing::info!("stopped");
    Ok(())
}

/// Migrate, retrying while the database cannot be reached (a replica restarted during an
/// outage waits for it rather than die).
async fn migrate(pool: &deadpool_postgres::Pool, cfg: &Config) -> anyhow::Result<()> {
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        match db::migrate(pool, cfg.profile, cfg.providers, cfg.patients).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() < give_up => {
                tracing::warn!("migrations: {e:#}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.context("migrations")),
        }
    }
}
