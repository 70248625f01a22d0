//! `chaos up FILE`: a scenario's environment without workload or faults, for game days and
//! exploring by hand. Kept until Ctrl-C, SIGTERM or `chaos down`.

use std::path::Path;

use chaos_engine::env::docker::images::Build;
use chaos_engine::env::{Env, EnvConfig};
use chaos_model::EnvKind;
use serde_json::json;

use super::{load_scenario, runtime, up_dir};
use crate::exit;

pub fn run(
    file: &Path,
    profile: Option<&str>,
    as_json: bool,
    seed: u64,
    env: Option<EnvKind>,
    images: Build,
) -> anyhow::Result<u8> {
    let profile = profile.map(|p| {
        p.parse()
            .expect("clap restricts --profile to naive or hardened")
    });
    let (scenario, _) = match load_scenario(file, profile) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("chaos: {e}");
            return Ok(exit::USAGE);
        }
    };
    let run_id = format!("up-{}-{}", scenario.name, std::process::id());
    let kind = super::env_of(env, None, &scenario);
    let cfg = EnvConfig {
        run_id: run_id.clone(),
        profile: scenario.profile,
        replicas: scenario.replicas,
        providers: scenario.workload.providers,
        patients: scenario.workload.clients,
        seed,
        options: scenario.options.clone(),
        keep_dir: false,
        kind,
        images,
    };
    let rt = runtime()?;
    if let Err(e) = super::prepare(&rt, kind == EnvKind::Docker, cfg.images) {
        eprintln!("chaos: {e}");
        return Ok(exit::ENVIRONMENT);
    }
    rt.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        // The terminal `chaos up` runs in may close: that ends it as Ctrl-C does.
        let mut hangup = signal(SignalKind::hangup())?;
        let note = |m: String| eprintln!("[up] {m}");
        let env = tokio::select! {
            r = Env::start(&cfg, &note) => match r {
                Ok(env) => env,
                Err(e) => {
                    eprintln!("chaos: {e}");
                    return Ok(exit::ENVIRONMENT);
                }
            },
            _ = tokio::signal::ctrl_c() => return Ok(exit::INTERRUPTED_INT),
            _ = term.recv() => return Ok(exit::INTERRUPTED_TERM),
            _ = hangup.recv() => return Ok(exit::INTERRUPTED_TERM),
        };
        let ep = env.endpoints();
        let doc = json!({
            "run_id": run_id,
            "profile": scenario.profile,
            "environment": kind,
            "target": ep.target,
            "proxy_api": ep.proxy_api,
            "stubs": ep.stubs,
            "services": ep.services,
        });
        std::fs::create_dir_all(up_dir())?;
        let record = up_dir().join(format!("{run_id}.json"));
        std::fs::write(
            &record,
            // The start time lets `chaos down` tell this process from a later one that
            // reuses its pid.
            json!({
                "pid": std::process::id(),
                "started": super::down::process_start_time(std::process::id() as i32),
                "endpoints": doc,
            })
            .to_string(),
        )?;
        if as_json {
            println!("{doc}");
        } else {
            println!(
                "environment {run_id} is up ({} profile, {kind})",
                scenario.profile
            );
            for (i, t) in ep.target.iter().enumerate() {
                println!("  target replica {i}: {t}");
            }
            println!("  proxy API (Toxiproxy): {}", ep.proxy_api);
            for (name, url) in &ep.stubs {
                println!("  stub {name} control: {url}");
            }
            for (name, addr) in &ep.services {
                println!("  service {name} (through its proxy): {addr}");
            }
            println!("stop with Ctrl-C or `chaos down --run {run_id}`");
        }
        let code = tokio::select! {
            _ = tokio::signal::ctrl_c() => exit::VALID,
            _ = term.recv() => exit::VALID,
            _ = hangup.recv() => exit::VALID,
        };
        eprintln!("[up] stopping {run_id}");
        env.shutdown().await;
        let _ = std::fs::remove_file(&record);
        Ok(code)
    })
}
