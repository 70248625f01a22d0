//! The `chaos` binary: parse arguments, run one command, map its outcome to an exit code.
//! This is the only part of the harness that prints.

mod args;
mod commands;
mod exit;
#[cfg(test)]
mod fuzz;
mod progress;
mod report;
#[cfg(test)]
#[path = "../tests/support/schema.rs"]
mod schema;
#[cfg(test)]
mod snapshots;

use std::process::ExitCode;

use clap::Parser;

/// glibc's malloc was a fifth of the workload driver's CPU at high rates (`benches/driver.rs`);
/// its settings are `chaos_engine::alloc`'s.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    chaos_engine::alloc::keep_freed_memory();
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; every other parse error is a usage error.
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::VALID
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            // lapin logs a closed channel as an error; the evidence's passive declares close
            // one for every queue a profile lacks, which is expected, not news.
            tracing_subscriber::EnvFilter::try_from_env("CHAOS_LOG")
                .unwrap_or_else(|_| "warn,lapin=off".into()),
        )
        .init();
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("chaos: error: {e:#}");
            ExitCode::from(exit::ENVIRONMENT)
        }
    }
}
