#!/usr/bin/env bash
# The drift check's load on the live server, against its configured rate.
#
# For each server kind (redis-server 7, kevy with 4 shards): a source server is filled with KEYS
# keys (80 % strings, 10 % hashes of 4 fields, 10 % lists of 4 items), `aofvault backup` ships
# it into a file:// repository, and nothing else writes to it. Then, for each RATE,
# `aofvault verify --against` runs (every key compared) while a sampler reads the server's
# `total_commands_processed` (INFO stats) every second. Printed per run: the commands the check
# says it sent, the commands the server counted during the run (minus the sampler's own INFO
# calls), the check's duration, the busiest one-second window the server saw (minus the
# sampler's 1/s) and the average over the seconds the check was reading the live server.
#
# Usage: scripts/bench-drift.sh [KEYS] [RATES] [KINDS]   e.g. scripts/bench-drift.sh 20000 "1000 5000" "redis kevy"
# Needs redis-server, redis-cli, kevy (~/.cargo/bin/kevy or KEVY_BIN), cargo, python3.
set -euo pipefail

keys=${1:-20000}
rates=${2:-"1000 5000"}
kinds=${3:-"redis kevy"}
repo_root=$(cd "$(dirname "$0")/.." && pwd)
work=${KEEP_DIR:-$(mktemp -d -t aofvault-bench-drift.XXXXXX)}
mkdir -p "$work"
kevy_bin=${KEVY_BIN:-$HOME/.cargo/bin/kevy}
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -z "${KEEP_DIR:-}" ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

echo "building aofvault (release)..." >&2
(cd "$repo_root" && cargo build --release -p aofvault >&2)
bin="$repo_root/target/release/aofvault"
export KEVY_BIN="$kevy_bin"

port() { echo $((20000 + RANDOM % 30000)); }

wait_ping() { # port
    for _ in $(seq 1 600); do
        if [[ "$(redis-cli -p "$1" ping 2>/dev/null)" == "PONG" ]]; then return; fi
        sleep 0.05
    done
    echo "server on port $1 did not start" >&2
    exit 1
}

start() { # kind dir port
    local kind=$1 dir=$2 p=$3
    mkdir -p "$dir"
    if [[ $kind == redis ]]; then
        redis-server --port "$p" --bind 127.0.0.1 --dir "$dir" --appendonly yes --save '' \
            --logfile "$dir/../redis-$p.log" --daemonize no &
    else
        printf '[persistence]\naof = true\nappendfsync = "everysec"\n' >"$dir/../kevy-$p.toml"
        env -u KEVY_DIR "$kevy_bin" --config "$dir/../kevy-$p.toml" --bind 127.0.0.1 --port "$p" \
            --dir "$dir" --threads 4 >"$dir/../kevy-$p.log" 2>&1 &
    fi
    pids+=($!)
    wait_ping "$p"
}

total() { redis-cli -p "$1" info stats | tr -d '\r' | awk -F: '/^total_commands_processed:/ {print $2}'; }

python3 - "$keys" >"$work/load.resp" <<'PY'
import random, sys
n = int(sys.argv[1])
rng = random.Random(42)
out = sys.stdout.buffer
def cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    out.write(b"".join(parts))
for i in range(n):
    k = i % 10
    if k == 8:
        cmd("HSET", f"h:{i}", "f1", f"a{i}", "f2", rng.randbytes(8).hex(), "f3", "c", "f4", str(i))
    elif k == 9:
        cmd("RPUSH", f"l:{i}", f"x{i}", rng.randbytes(15).hex(), "z", str(i))
    else:
        cmd("SET", f"s:{i}", rng.randbytes(30 + (i * 7) % 70).hex())
PY

printf '%-6s %6s %8s %14s %14s %9s %12s %14s\n' kind keys rate check_sent server_counted seconds peak_ops_s avg_ops_s_live
for kind in $kinds; do
    d="$work/$kind"
    mkdir -p "$d"
    p=$(port)
    start "$kind" "$d/source" "$p"
    redis-cli -p "$p" --pipe <"$work/load.resp" >/dev/null 2>&1 || true
    sleep 2 # kevy writes its AOF within a second (everysec)
    n=$(redis-cli -p "$p" dbsize)
    "$bin" backup --source "$d/source" --server "redis://127.0.0.1:$p" --repo "file://$d/repo" \
        --instance b --state-dir "$d/state" >/dev/null 2>"$d/backup.log"
    for rate in $rates; do
        : >"$d/samples"
        ( while true; do echo "$(date +%s.%N) $(total "$p")" >>"$d/samples"; sleep 1; done ) &
        sampler=$!
        before=$(total "$p")
        "$bin" --repo "file://$d/repo" --instance b --state-dir "$d/state" \
            verify --against "redis://127.0.0.1:$p" --rate "$rate" --json >"$d/check.json" 2>"$d/check.log" || true
        after=$(total "$p")
        kill "$sampler"; wait "$sampler" 2>/dev/null || true
        python3 - "$d/check.json" "$d/samples" "$before" "$after" "$kind" "$n" "$rate" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
samples = [tuple(map(float, l.split())) for l in open(sys.argv[2]) if len(l.split()) == 2]
before, after = int(sys.argv[3]), int(sys.argv[4])
kind, n, rate = sys.argv[5], sys.argv[6], sys.argv[7]
# Each sample is one INFO call; the one before/after the run are two more.
counted = after - before - len(samples) - 1
# Per-second deltas between samples, minus the sampler's own INFO (1 per sample).
deltas = [((c2 - c1) - 1) / (t2 - t1) for (t1, c1), (t2, c2) in zip(samples, samples[1:])]
busy = [x for x in deltas if x > 1]
peak = max(deltas) if deltas else 0
avg = sum(busy) / len(busy) if busy else 0
assert not doc["divergences"], doc["divergences"]
print(f"{kind:<6} {n:>6} {rate:>8} {doc['server_commands']:>14} {counted:>14} {doc['seconds']:>9.1f} {peak:>12.0f} {avg:>14.0f}")
PY
    done
done
