//! The `stubs` binary: serves the Twilio stub and its control API on their own ports and
//! prints one JSON line with the bound addresses, which is its readiness signal.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

#[derive(Parser, Debug)]
#[command(
    about = "Twilio, SendGrid and EHR (FHIR) stubs with a control API, for chaos experiments"
)]
struct Args {
    /// Address of the Twilio API.
    #[arg(long, default_value = "127.0.0.1:0")]
    twilio: String,
    /// Address of the SendGrid API.
    #[arg(long, default_value = "127.0.0.1:0")]
    sendgrid: String,
    /// Address of the EHR FHIR API.
    #[arg(long, default_value = "127.0.0.1:0")]
    ehr: String,
    /// Address of the control API: /<stub>/calls, /<stub>/knobs, /<stub>/reset.
    #[arg(long, default_value = "127.0.0.1:0")]
    control: String,
}

async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind {addr}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let args = Args::parse();
    let twilio = Arc::new(stubs::Stub::default());
    let sendgrid = Arc::new(stubs::Stub::default());
    let ehr = Arc::new(stubs::ehr::Ehr::default());
    let (t, s, e, c) = (
        bind(&args.twilio).await?,
        bind(&args.sendgrid).await?,
        bind(&args.ehr).await?,
        bind(&args.control).await?,
    );
    let control = format!("http://{}", c.local_addr()?);
    let ready = serde_json::json!({
        "twilio": t.local_addr()?.to_string(),
        "sendgrid": s.local_addr()?.to_string(),
        "ehr": e.local_addr()?.to_string(),
        "control": {
            "twilio": format!("{control}/twilio"),
            "sendgrid": format!("{control}/sendgrid"),
            "ehr": format!("{control}/ehr"),
        },
    });
    println!("{ready}");
    let control_app = axum::Router::new()
        .nest("/twilio", stubs::control_router(twilio.clone()))
        .nest("/sendgrid", stubs::control_router(sendgrid.clone()))
        .nest("/ehr", stubs::control_router(ehr.stub.clone()));
    tokio::try_join!(
        axum::serve(t, stubs::twilio::router(twilio)),
        axum::serve(s, stubs::sendgrid::router(sendgrid)),
        axum::serve(e, stubs::ehr::router(ehr)),
        axum::serve(c, control_app),
    )?;
    Ok(())
}
