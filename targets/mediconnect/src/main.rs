//! The `mediconnect` binary: migrate, start the API and the notification worker, print the
//! bound address as one JSON line on stdout (the readiness signal), serve until SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use mediconnect::api::{AppState, router};
use mediconnect::broker::Broker;
use mediconnect::metrics::Metrics;
use mediconnect::sessions::Sessions;
use mediconnect::{Config, db, ehr, outbox, reminders, worker};

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
    db::migrate(&pool, cfg.profile, cfg.providers, cfg.patients)
        .await
        .context("migrations")?;
    let broker = Arc::new(Broker::new(&cfg.amqp, cfg.profile));
    let state = Arc::new(AppState {
        profile: cfg.profile,
        sessions: Sessions::new(&cfg.redis, cfg.profile, pool.clone())?,
        pool,
        broker: Arc::clone(&broker),
        metrics: Metrics::default(),
        rate_limit: cfg.rate_limit,
        max_in_flight: cfg.max_in_flight,
        in_flight: std::sync::atomic::AtomicUsize::new(0),
    });
    if cfg.worker {
        let senders = worker::Senders::new(
            cfg.profile,
            &cfg.twilio,
            &cfg.sendgrid,
            state.pool.clone(),
            Arc::clone(&broker),
        );
        tokio::spawn(worker::run(cfg.amqp.clone(), Arc::new(senders)));
    }
    if cfg.poll_ms > 0 {
        tokio::spawn(reminders::run(
            state.pool.clone(),
            cfg.profile,
            Arc::clone(&broker),
            cfg.clock(),
            std::time::Duration::from_millis(cfg.poll_ms),
        ));
    }
    if cfg.ehr_sync_ms > 0 {
        tokio::spawn(ehr::run(
            state.pool.clone(),
            cfg.profile,
            cfg.ehr.clone(),
            std::time::Duration::from_millis(cfg.ehr_sync_ms),
        ));
    }
    if cfg.profile == mediconnect::Profile::Hardened {
        tokio::spawn(outbox::run_relay(state.pool.clone(), Arc::clone(&broker)));
    }
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("bind {}", cfg.listen))?;
    println!(
        "{}",
        serde_json::json!({ "listen": listener.local_addr()?.to_string() })
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    Ok(())
}
