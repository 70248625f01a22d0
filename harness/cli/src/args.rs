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
pub enum ImagesAction {
    /// Build the images the current binaries need, unless images with their tags exist;
    /// copy the broker's code out of the app image onto its volumes; remove the images and
    /// code volumes of earlier inputs.
    Build,
    /// Print the tags the current binaries need and whether each is on the engine, and the
    /// broker's code volumes.
    Status,
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
        /// Where the services run: `local` processes or `docker` containers (overrides the
        /// scenario's or suite's `environment`; local when none says).
        #[arg(long, value_parser = ["local", "docker"])]
        env: Option<String>,
        /// On docker: fail (exit 4) when an image is missing instead of building it.
        #[arg(long)]
        no_image_build: bool,
    },
    /// Run a suite of scenarios, compare each verdict with the scenario's expectations, and
    /// write the index and the findings matrix. Exit 1 on any deviation (or regression from
    /// the baseline), 4 when a run's environment failed and nothing deviated, 0 otherwise.
    Suite {
        /// The suite file (TOML), e.g. scenarios/smoke.toml.
        file: PathBuf,
        /// The first seed: run i of a row uses seed + i - 1 (fresh and printed when absent).
        #[arg(long)]
        seed: Option<u64>,
        /// Run every row this many times (seeds seed, seed+1, ...); overrides the suite's.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        seeds: Option<u32>,
        /// A previous suite run to compare each row with (overrides `[baseline] dir`).
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Where to write the suite's bundles and index (default: reports/suites/<suite>/<utc>-<seed>/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where the services run: `local` processes or `docker` containers (overrides the
        /// scenario's or suite's `environment`; local when none says).
        #[arg(long, value_parser = ["local", "docker"])]
        env: Option<String>,
        /// On docker: fail (exit 4) when an image is missing instead of building it.
        #[arg(long)]
        no_image_build: bool,
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
        /// Where the services run: `local` processes or `docker` containers (overrides the
        /// scenario's or suite's `environment`; local when none says).
        #[arg(long, value_parser = ["local", "docker"])]
        env: Option<String>,
        /// On docker: fail (exit 4) when an image is missing instead of building it.
        #[arg(long)]
        no_image_build: bool,
    },
    /// Stop environments started by `chaos up` (all of them, or the one named), and reap
    /// what crashed runs left on the Docker engine; with `--all`, also remove the leftovers
    /// of crashed local runs and every container, network and volume of this machine's runs
    /// on the engine, live runs' included.
    Down {
        /// The run id `chaos up` printed.
        #[arg(long, conflicts_with = "all")]
        run: Option<String>,
        /// Remove every docker environment of this machine's runs, live or left behind.
        #[arg(long)]
        all: bool,
    },
    /// The docker environment's images: built here from Debian packages (debootstrap) and
    /// the workspace's binaries, tagged by a hash of their inputs, never pulled; and the
    /// volumes the broker boots from, copied out of them (read-only, shared by runs).
    Images {
        #[command(subcommand)]
        action: ImagesAction,
    },
    /// Re-render a run bundle's reports (checking its history and evidence again), or
    /// compare two runs of one scenario phase by phase (exit 1 on a regression past the
    /// thresholds given).
    #[command(arg_required_else_help = true)]
    Report {
        /// The run bundle, e.g. reports/runs/booking-contention/20261122T120000Z-42.
        #[arg(conflicts_with = "compare")]
        run_dir: Option<PathBuf>,
        /// Compare a candidate run with a baseline: per-phase latency and error deltas and
        /// every invariant's verdict on each, as Markdown on stdout.
        #[arg(long, num_args = 2, value_names = ["BASELINE", "CANDIDATE"])]
        compare: Option<Vec<PathBuf>>,
        /// With --compare: exit 1 when a phase's p99 grew past this multiple of the baseline's.
        #[arg(long, requires = "compare", value_name = "RATIO")]
        p99_ratio: Option<f64>,
        /// With --compare: exit 1 when a phase's share of ops not ok grew by more than this
        /// (0.02: two points).
        #[arg(long, requires = "compare", value_name = "DELTA")]
        error_share_delta: Option<f64>,
        /// With --compare: exit 1 when the time to recover from a heal grew past this multiple.
        #[arg(long, requires = "compare", value_name = "RATIO")]
        recovery_ratio: Option<f64>,
    },
    /// Check scenario files without running anything.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Join the figures the benchmarks of `just bench` left in reports/bench/parts/ into one
    /// report: reports/bench/<date>.md and .json (every figure beside its peer or floor, the
    /// ratio and its goal), a plot of the proxy's latency distributions, and the latest
    /// table in reports/README.md.
    BenchReport {
        /// Where the benchmarks left their parts.
        #[arg(long, default_value = "reports/bench/parts")]
        parts: PathBuf,
        /// Where the dated report goes.
        #[arg(long, default_value = "reports/bench")]
        out: PathBuf,
        /// The file whose `bench:begin` ... `bench:end` section keeps the latest table.
        #[arg(long, default_value = "reports/README.md")]
        readme: PathBuf,
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
