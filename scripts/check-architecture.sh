#!/usr/bin/env bash
# Check the architecture invariants that a command can check (ARCHITECTURE.md):
# the model and the checkers depend on no async runtime and no network or process crate.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
for krate in chaos-model chaos-check; do
    for dep in tokio reqwest axum tokio-postgres nix; do
        out=$(cargo tree -q -e normal -p "$krate" -i "$dep" 2>&1 || true)
        if ! grep -q "did not match any packages" <<<"$out"; then
            echo "architecture: $krate must not depend on $dep:" >&2
            echo "$out" >&2
            fail=1
        fi
    done
done
[ "$fail" -eq 0 ] && echo "architecture: model and check are free of IO and async crates"
exit "$fail"
