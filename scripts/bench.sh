#!/usr/bin/env bash
# `just bench`: every benchmark in one run, then one report. Each bench leaves its figures in
# reports/bench/parts/ (cleared first, so the report holds this run's figures only);
# `chaos bench-report` joins them into reports/bench/<date>.md and .json with the proxy's
# latency plot, and rewrites the latest table in reports/README.md. A bench that fails stops
# the run before any report is written. (`chaos bench-report` alone joins whatever parts
# are there, and names the missing ones.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh wrk
rm -rf reports/bench/parts
# The proxy as is, then with every thread on one CPU (see benches/proxy.rs).
cargo bench -p chaos-engine --bench proxy
CHAOS_BENCH_PIN=0 cargo bench -p chaos-engine --bench proxy
cargo bench -p chaos-engine --bench driver
cargo bench -p chaos-check --bench checkers
# Environment start runs the workspace's debug binaries, as `chaos run` does.
cargo build --workspace --bins
CHAOS_BIN_DIR="${CARGO_TARGET_DIR:-$PWD/target}/debug" cargo bench --profile dev -p chaos-engine --bench envstart
cargo run -q -p chaos-cli -- bench-report
