# The menu: `just --list`. Every recipe is one line.

# List the recipes
default:
    @just --list

# Install the servers and tools the project needs (idempotent)
setup:
    scripts/setup.sh

# Build every binary of the workspace (chaos, mediconnect, stubs)
build:
    cargo build --workspace --bins

# Run the smoke suite: contention on both profiles, a Redis kill, a latency toxic
smoke: build
    cargo run -q -p chaos-cli -- suite scenarios/smoke.toml

# Build the docker environment's images (Debian packages by debootstrap, then the workspace's binaries); rebuilt only when an input changes
images: build
    cargo run -q -p chaos-cli -- images build

# Run the smoke suite on the docker environment (containers through testcontainers)
smoke-docker: build
    cargo run -q -p chaos-cli -- suite scenarios/smoke.toml --env docker

# Run the experiments only containers can run (a partition), on both profiles
docker-suite: build
    cargo run -q -p chaos-cli -- suite scenarios/docker.toml

# Run the nightly suite: every scenario on both profiles (about 25 minutes)
nightly *ARGS: build
    cargo run -q -p chaos-cli -- suite scenarios/nightly.toml {{ARGS}}

# Run the release suite: hardened, three seeds each, e.g. `just release --baseline reports/suites/release/<run>`
release *ARGS: build
    cargo run -q -p chaos-cli -- suite scenarios/release.toml {{ARGS}}

# Fuzz the scenario parser, the suite parser and the bundle reader (CHAOS_FUZZ_CASES cases each, 64 by default)
fuzz:
    cargo nextest run -p chaos-cli fuzz

# Run one scenario, e.g. `just run scenarios/mediconnect/redis-kill.toml --profile naive`
run *ARGS: build
    cargo run -q -p chaos-cli -- run {{ARGS}}

# Every test tier: unit and integration, then end-to-end against real servers
test: build images
    cargo nextest run --workspace --profile all

# The fast tier only (no servers started)
test-fast: build
    cargo nextest run --workspace

# The end-to-end tier only (real PostgreSQL, Redis, RabbitMQ; serialised)
test-e2e: build
    cargo nextest run --workspace --profile e2e

# The docker tier only (real containers: faults, partition, cleanup after Ctrl-C and SIGKILL)
test-docker: build images
    cargo nextest run --workspace --profile docker

# Benchmarks (release build), each against a peer or floor in the same run: the proxy (as is, and every thread on one CPU), the driver against wrk, every checker on a 1M-op history, environment start; then one report in reports/bench/<date>.md
bench:
    scripts/bench.sh

# Benchmark of MediConnect itself (release build): capacity, p99 at 200 bookings/s, slots at 1M rows
bench-target:
    cargo build --release -p mediconnect -p stubs --bins && cargo bench -p mediconnect --bench capacity

# Re-render a run bundle's reports, e.g. `just report reports/runs/redis-kill/<utc>-<seed>`
report *ARGS: build
    cargo run -q -p chaos-cli -- report {{ARGS}}

# Look at a bundle's report.html as a person would: headless Chromium renders it to report.png
report-png DIR:
    scripts/setup.sh chromium && chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1060,2400 --screenshot="$(realpath {{DIR}})/report.png" "file://$(realpath {{DIR}})/report.html" && echo "$(realpath {{DIR}})/report.png"

# Formatting, clippy with warnings as errors, and the architecture invariants
lint:
    cargo fmt --all --check && cargo clippy --workspace --all-targets -- -D warnings && scripts/check-architecture.sh

# Format the code
fmt:
    cargo fmt --all

# Remove run bundles and suite reports
clean:
    rm -rf reports/runs reports/suites
