#!/usr/bin/env bash
# THE test command: installs missing dependencies (scripts/install-deps.sh), builds the
# `aofvault` binary that the end-to-end tests run, then runs every test of the workspace.
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh -p aofvault-tests -- kevy`.
set -euo pipefail

cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "test.sh: cargo build -p aofvault"
cargo build -p aofvault

target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$(pwd)/$target" ;; esac
export AOFVAULT_BIN="$target/debug/aofvault"
[ -x "$AOFVAULT_BIN" ] || { echo "test.sh: $AOFVAULT_BIN was not built" >&2; exit 1; }

# The follower simulation (agent/tests/sim.rs): a thousand seeds here (about a minute in a debug
# build); scripts/soak.sh runs millions in release.
export AOFVAULT_SIM_SEEDS=${AOFVAULT_SIM_SEEDS:-1000}

export AOFVAULT_SIM_REPORT="$target/sim-report.txt"
rm -f "$AOFVAULT_SIM_REPORT"

echo "test.sh: cargo test --workspace --no-fail-fast $*"
status=0
cargo test --workspace --no-fail-fast "$@" || status=$?
if [ -f "$AOFVAULT_SIM_REPORT" ]; then
    echo "test.sh: follower simulation: $(cat "$AOFVAULT_SIM_REPORT")"
fi
exit "$status"
