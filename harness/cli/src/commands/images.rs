//! `chaos images build|status`: the docker environment's images, built on this machine from
//! Debian packages and the workspace's binaries, never pulled, and the broker's code volumes
//! copied out of them.

use chaos_engine::env::docker::images::{self, Build};

use super::runtime;
use crate::args::ImagesAction;
use crate::exit;

pub fn run(action: &ImagesAction) -> anyhow::Result<u8> {
    let rt = runtime()?;
    rt.block_on(async {
        match action {
            ImagesAction::Build => {
                let started = std::time::Instant::now();
                let note = |m: String| eprintln!("[images] {m}");
                match images::ensure(Build::Command, &note).await {
                    Ok(i) => {
                        println!("{}\n{}", i.base, i.app);
                        eprintln!("[images] ready in {:.1}s", started.elapsed().as_secs_f64());
                        Ok(exit::VALID)
                    }
                    Err(e) => {
                        eprintln!("chaos: {e}");
                        Ok(exit::ENVIRONMENT)
                    }
                }
            }
            ImagesAction::Status => {
                let wanted = match images::wanted() {
                    Ok(w) => w,
                    Err(e) => {
                        eprintln!("chaos: {e}");
                        return Ok(exit::ENVIRONMENT);
                    }
                };
                let mut missing = 0;
                for tag in [&wanted.base, &wanted.app] {
                    match images::exists(tag).await {
                        Ok(true) => println!("{tag}  present"),
                        Ok(false) => {
                            missing += 1;
                            println!("{tag}  missing");
                        }
                        Err(e) => {
                            eprintln!("chaos: {e}");
                            return Ok(exit::ENVIRONMENT);
                        }
                    }
                }
                if missing > 0 {
                    eprintln!("build with `chaos images build`");
                    return Ok(exit::ENVIRONMENT);
                }
                // Copied out of the app image when incomplete, by the build or the next run.
                for (volume, dir) in wanted.code_volumes() {
                    match images::volume_exists(&volume).await {
                        Ok(present) => println!(
                            "{volume}  {} ({dir})",
                            if present { "present" } else { "missing" }
                        ),
                        Err(e) => {
                            eprintln!("chaos: {e}");
                            return Ok(exit::ENVIRONMENT);
                        }
                    }
                }
                match images::code_volumes_complete(&wanted).await {
                    Ok(true) => println!("code volumes complete ({})", wanted.code_marker()),
                    Ok(false) => println!(
                        "code volumes incomplete: `chaos images build` or the next run fills them from the app image"
                    ),
                    Err(e) => {
                        eprintln!("chaos: {e}");
                        return Ok(exit::ENVIRONMENT);
                    }
                }
                Ok(exit::VALID)
            }
        }
    })
}
