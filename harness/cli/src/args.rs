//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "chaos",
    version,
    about = "Fault injection and invariant checking for the MediConnect scheduling system",
    after_help = "Exit codes: 0 all invariants valid, 1 an invariant violated, 2 unknown, \
                  3 bad scenario or usage, 4 environment failed, 130/143 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one scenario: start the environment, drive the workload, inject the faults,
    /// check the invariants and write the run bundle.
    Run {
        /// The scenario file (TOML).
        file: PathBuf,
        /// Resilience profile of the target; overrides the scenario's.
        #[arg(long, value_parser = ["naive", "hardened"])]
        profile: Option<String>,
        /// Seed of every random choice; a fresh one is drawn and printed when absent.
        #[arg(long)]
        seed: Option<u64>,
        /// Where to write the bundle (default: reports/runs/<scenario>/<utc>-<seed>/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Keep the environment's run directory (server data and sockets) for debugging.
        #[arg(long)]
        keep_env: bool,
    },
    /// Run a suite of scenarios and compare each verdict with the scenario's expectations.
    Suite {
        /// The suite file (TOML), e.g. scenarios/smoke.toml.
        file: PathBuf,
        #[arg(long)]
        seed: Option<u64>,
        /// Where to write the suite's bundles and index (default: reports/suites/<suite>/<utc>/).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Start a scenario's environment (services, proxies, stubs, target replicas) without
    /// workload or faults, print its endpoints, and keep it until Ctrl-C or `chaos down`.
    Up {
        /// The scenario file (TOML): its target, profile, replicas and workload size.
        file: PathBuf,
        #[arg(long, value_parser = ["naive", "hardened"])]
        profile: Option<String>,
        /// Print the endpoints as one JSON object on stdout.
        #[arg(long)]
        json: bool,
        /// Seed of the proxies' randomness.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Stop environments started by `chaos up` (all of them, or the one named).
    Down {
        /// The run id `chaos up` printed.
        #[arg(long)]
        run: Option<String>,
    },
    /// Re-render a run bundle's reports (checking its history and evidence again), or
    /// compare two runs of one scenario phase by phase.
    #[command(arg_required_else_help = true)]
    Report {
        /// The run bundle, e.g. reports/runs/booking-contention/20261122T120000Z-42.
        #[arg(conflicts_with = "compare")]
        run_dir: Option<PathBuf>,
        /// Compare a candidate run with a baseline: per-phase latency and error deltas and
        /// every invariant's verdict on each, as Markdown on stdout.
        #[arg(long, num_args = 2, value_names = ["BASELINE", "CANDIDATE"])]
        compare: Option<Vec<PathBuf>>,
    },
    /// Check scenario files without running anything.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run only the toxic proxy server, speaking the Toxiproxy HTTP API.
    Proxy {
        /// Address of the HTTP API.
        #[arg(long, default_value = "127.0.0.1:8474")]
        api: String,
        /// Seed of the proxies' randomness (jitter, toxicity).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}
