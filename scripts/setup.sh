#!/usr/bin/env bash
# Install what the project needs on Debian 12, idempotently: the servers the local
# environment starts (PostgreSQL, Redis, RabbitMQ), the headers one test dependency builds
# against (libssl-dev, pkg-config), `just` (from PyPI's rust-just, into .tools/), and
# cargo-nextest, and debootstrap (the docker environment builds its images from Debian
# packages: `chaos images build`). Safe to run again: it installs only what is missing. Extra Debian package
# names given as arguments are installed too (`scripts/setup.sh chromium` for `just report-png`).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. Servers from Debian's packages. Their own init scripts are not used: the harness starts
#    private instances as child processes on free loopback ports.
packages=(postgresql redis-server rabbitmq-server pkg-config libssl-dev debootstrap "$@")
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]} (apt-get)"
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. just, unless one is on PATH already.
if ! command -v just >/dev/null 2>&1 && [ ! -x .tools/bin/just ]; then
    say "installing just into .tools/ (pip: rust-just)"
    python3 -m pip install --quiet --disable-pip-version-check --target .tools rust-just 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check --target .tools rust-just
fi

# 3. cargo-nextest, the test runner.
if ! cargo nextest --version >/dev/null 2>&1; then
    say "installing cargo-nextest (cargo install; a few minutes)"
    cargo install --locked cargo-nextest
fi
