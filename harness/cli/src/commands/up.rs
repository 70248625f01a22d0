//! `chaos up FILE`: a scenario's environment without workload or faults, for game days and
//! exploring by hand. Kept until Ctrl-C, SIGTERM or `chaos down`.

use std::path::Path;

use chaos_engine::env::{LocalEnv, LocalEnvConfig};
use serde_json::json;

use super::{load_scenario, runtime, up_dir};
use crate::exit;

pub fn run(file: &Path, profile: Option<&str>, as_json: bool, seed: u64) -> anyhow::Result<u8> {
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
    let cfg = LocalEnvConfig {
        run_id: run_id.clone(),
        profile: scenario.profile,
        replicas: scenario.replicas,
        providers: scenario.workload.providers,
        patients: scenario.workload.clients,
        seed,
        options: scenario.options.clone(),
        keep_dir: false,
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let note = |m: String| eprintln!("[up] {m}");
        let env = tokio::select! {
            r = LocalEnv::start(&cfg, &note) => match r {
                Ok(env) => env,
                Err(e) => {
                    eprintln!("chaos: {e}");
                    return Ok(exit::ENVIRONMENT);
                }
            },
            _ = tokio::signal::ctrl_c() => return Ok(exit::INTERRUPTED_INT),
            _ = term.recv() => return Ok(exit::INTERRUPTED_TERM),
        };
        let ep = env.endpoints();
        let doc = json!({
            "run_id": run_id,
            "profile": scenario.profile,
            "target": ep.target,
            "proxy_api": ep.proxy_api,
            "stubs": ep.stubs,
            "services": ep.services,
        });
        std::fs::create_dir_all(up_dir())?;
        let record = up_dir().join(format!("{run_id}.json"));
        std::fs::write(
            &record,
            json!({ "pid": std::process::id(), "endpoints": doc }).to_string(),
        )?;
        if as_json {
            println!("{doc}");
        } else {
            println!("environment {run_id} is up ({} profile)", scenario.profile);
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
        };
        eprintln!("[up] stopping {run_id}");
        env.shutdown().await;
        let _ = std::fs::remove_file(&record);
        Ok(code)
    })
}
