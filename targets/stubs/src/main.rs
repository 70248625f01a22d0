//! The `stubs` binary: serves the three stubs (or, with `--only`, one of them, journaled
//! with `--journal`) and their control API on their own ports, and prints one JSON line with
//! the bound addresses on stdout, which is its readiness signal.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use stubs::Kind;
use tokio::net::TcpListener;

#[derive(Parser, Debug)]
#[command(
    about = "Twilio, SendGrid and EHR (FHIR) stubs with a control API, for chaos experiments",
    after_help = "Ready line on stdout, all three: {\"twilio\": ADDR, \"sendgrid\": ADDR, \"ehr\": ADDR, \
                  \"control\": {\"twilio\": URL, \"sendgrid\": URL, \"ehr\": URL}}; with --only NAME: \
                  {\"NAME\": ADDR, \"control\": {\"NAME\": URL}}. Port 0 picks a free port."
)]
struct Args {
    /// Serve this stub alone (twilio, sendgrid or ehr), on --listen.
    #[arg(long, value_parser = |s: &str| s.parse::<Kind>(), conflicts_with_all = ["twilio", "sendgrid", "ehr"])]
    only: Option<Kind>,
    /// Address of the --only stub's API.
    #[arg(long, requires = "only", default_value = "127.0.0.1:0")]
    listen: String,
    /// Append every call to this file as it arrives and is answered, and replay it on start
    /// (with --only).
    #[arg(long, requires = "only")]
    journal: Option<PathBuf>,
    /// Address of the Twilio API.
    #[arg(long)]
    twilio: Option<String>,
    /// Address of the SendGrid API.
    #[arg(long)]
    sendgrid: Option<String>,
    /// Address of the EHR FHIR API.
    #[arg(long)]
    ehr: Option<String>,
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
    let kinds: Vec<(Kind, String)> = match args.only {
        Some(kind) => vec![(kind, args.listen.clone())],
        None => {
            let or_any = |a: &Option<String>| a.clone().unwrap_or_else(|| "127.0.0.1:0".into());
            vec![
                (Kind::Twilio, or_any(&args.twilio)),
                (Kind::Sendgrid, or_any(&args.sendgrid)),
                (Kind::Ehr, or_any(&args.ehr)),
            ]
        }
    };
    let control_listener = bind(&args.control).await?;
    let control_base = format!("http://{}", control_listener.local_addr()?);
    let mut control_app = axum::Router::new();
    let mut ready = serde_json::Map::new();
    let mut controls = serde_json::Map::new();
    let mut servers = tokio::task::JoinSet::new();
    for (kind, addr) in kinds {
        let routers = stubs::routers(kind, args.journal.as_deref())?;
        let listener = bind(&addr).await?;
        ready.insert(
            kind.name().into(),
            listener.local_addr()?.to_string().into(),
        );
        controls.insert(
            kind.name().into(),
            format!("{control_base}/{}", kind.name()).into(),
        );
        control_app = control_app.merge(routers.control);
        servers.spawn(async move { axum::serve(listener, routers.api).await });
    }
    ready.insert("control".into(), controls.into());
    servers.spawn(async move { axum::serve(control_listener, control_app).await });
    println!("{}", serde_json::Value::Object(ready));
    // The servers run until the process is stopped; the first one to fail ends it.
    if let Some(done) = servers.join_next().await {
        done.context("a server task panicked")?
            .context("a server stopped")?;
    }
    Ok(())
}
