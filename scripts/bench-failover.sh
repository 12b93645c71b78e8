#!/usr/bin/env bash
# Takeover time and the RPO through a failover, on real redis-servers (a primary, a replica, an
# agent beside each; the replica promoted and the primary killed -9 under a write load), from
# tests/tests/group.rs. Runs it N times (default 5) and prints each run and the medians.
#   takeover: kill -9 → the replica's agent holds the lease and ships
#   first writes stored: the new primary's first acknowledged writes → in the repository
#   steady write stored: a write acknowledged once the new agent ships → in the repository
# Usage: scripts/bench-failover.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5}
cargo build -q -p aofvault
export AOFVAULT_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/aofvault"
out=$(mktemp)
for i in $(seq 1 "$n"); do
    cargo test -q -p aofvault-tests --test group -- --exact \
        promotion_and_kill9_of_the_primary_hand_the_backup_to_the_replicas_agent --nocapture 2>/dev/null \
        | grep GROUP-SUMMARY | tee -a "$out"
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for f in takeover_ms first_writes_stored_after_ms steady_write_stored_after_ms; do
    echo "median $f: $(grep -o "$f=[0-9]*" "$out" | cut -d= -f2 | median)"
done
rm -f "$out"
