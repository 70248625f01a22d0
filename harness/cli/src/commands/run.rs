//! `chaos run FILE`: one scenario, one bundle, one exit code.

use std::path::{Path, PathBuf};

use chaos_engine::env::docker::images::Build;
use chaos_engine::runner::RunSpec;
use chaos_model::EnvKind;

use super::{default_run_dir, load_scenario, run_one, runtime, seed_or_fresh};
use crate::exit;

pub fn run(
    file: &Path,
    profile: Option<&str>,
    seed: Option<u64>,
    out: Option<PathBuf>,
    keep_env: bool,
    env: Option<EnvKind>,
    images: Build,
) -> anyhow::Result<u8> {
    let profile = profile.map(|p| {
        p.parse()
            .expect("clap restricts --profile to naive or hardened")
    });
    let (scenario, text) = match load_scenario(file, profile) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("chaos: {e}");
            return Ok(exit::USAGE);
        }
    };
    let env = super::env_of(env, None, &scenario);
    if let Some(why) = scenario.unsupported_on(env) {
        eprintln!("chaos: {why}");
        return Ok(exit::USAGE);
    }
    let seed = seed_or_fresh(seed);
    let out_dir = out.unwrap_or_else(|| default_run_dir(&scenario.name, seed));
    let spec = RunSpec {
        scenario,
        scenario_text: text,
        scenario_file: file.display().to_string(),
        seed,
        out_dir,
        keep_env_dir: keep_env,
        env,
        images,
    };
    let rt = runtime()?;
    if let Err(e) = super::prepare(&rt, env == EnvKind::Docker, images) {
        eprintln!("chaos: {e}");
        return Ok(exit::ENVIRONMENT);
    }
    let outcome = run_one(&rt, spec, file);
    if let Some(e) = &outcome.error {
        eprintln!("chaos: {e}");
    }
    for l in &outcome.lines {
        println!("{l}");
    }
    Ok(outcome.code)
}
