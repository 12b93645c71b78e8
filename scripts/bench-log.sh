#!/usr/bin/env bash
# `aofvault log` over a large stored history, against `zstd -dc … | grep -c` on the same
# objects, in the same run; and the peak RSS of `log` (it should not grow with the history).
#
#  1. redis-server 7 (aof-timestamp-enabled yes, no rewrites) is written with redis-benchmark
#     (SET key:__rand_int__ with DATA-byte values, random keys out of 1,000,000) until its AOF
#     holds about MB megabytes, while `aofvault run` ships it into a file:// repository
#     (default settings — segments of up to 16 MiB, zstd — but no compaction, so that both tools
#     read the same objects: only segments);
#  2. once everything is stored, the agent stops and, best of RUNS each, alternating:
#     - `aofvault log 'key:00000012*' --json` (decode every segment, parse every command, match
#       the pattern, print the matching writes), its time and peak RSS (/usr/bin/time -v);
#     - `zstd -dc <every seg-*.zst> | grep -ac 'key:00000012'` (decompress and byte search only);
#  3. the same `log` over a history twice as large (step 1 again into the same repository) shows
#     whether its peak RSS depends on the history's size.
# Prints one line per measurement: seconds, MB/s of stored stream, matches, peak RSS.
#
# Usage: scripts/bench-log.sh [MB] [RUNS] [DATA]   e.g. scripts/bench-log.sh 1024 3 200
# Needs redis-server, redis-benchmark, redis-cli, zstd, cargo, /usr/bin/time.
set -euo pipefail

mb=${1:-1024}
runs=${2:-3}
data=${3:-200}
repo_root=$(cd "$(dirname "$0")/.." && pwd)
work=${KEEP_DIR:-$(mktemp -d -t aofvault-bench-log.XXXXXX)}
mkdir -p "$work"
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -z "${KEEP_DIR:-}" ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

echo "building aofvault (release)..." >&2
(cd "$repo_root" && cargo build --release -p aofvault >&2)
bin="${CARGO_TARGET_DIR:-$repo_root/target}/release/aofvault"

port=$((20000 + RANDOM % 30000))
mkdir -p "$work/redis"
redis-server --port "$port" --bind 127.0.0.1 --dir "$work/redis" --appendonly yes --save '' \
    --aof-timestamp-enabled yes --auto-aof-rewrite-percentage 0 --logfile "$work/redis.log" --daemonize no &
pids+=($!)
for _ in $(seq 1 200); do [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == PONG ]] && break; sleep 0.05; done

repo="file://$work/repo"
global=(--repo "$repo" --instance bench --state-dir "$work/state")
printf '[compact]\nenabled = false\n' >"$work/aofvault.toml"
"$bin" "${global[@]}" --config "$work/aofvault.toml" --source "$work/redis" \
    --server "redis://127.0.0.1:$port" --log-format json run 2>"$work/agent.log" &
agent=$!
pids+=("$agent")

incr_size() {
    local m
    m=$(grep 'type i' "$work/redis/appendonlydir/appendonly.aof.manifest" | tail -1 | cut -d' ' -f2)
    stat -c %s "$work/redis/appendonlydir/$m"
}

fill() { # until the AOF holds $1 MB
    local target=$(($1 * 1024 * 1024))
    while (($(incr_size) < target)); do
        redis-benchmark -p "$port" -q -t set -n 500000 -r 1000000 -d "$data" -P 32 >/dev/null
    done
}

wait_stored() {
    local want
    want=$(incr_size)
    for _ in $(seq 1 1200); do
        local end
        end=$("$bin" "${global[@]}" restore --dry-run --json --to-dir /nonexistent 2>/dev/null |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["plan"]["shards"][0]["end"])')
        [[ "$end" == "$want" ]] && return
        sleep 1
    done
    echo "not shipped" >&2
    exit 1
}

measure() { # label
    local stored objects
    objects=$(find "$work/repo" -name 'seg-*.zst' | sort)
    # The stream bytes the segments hold, from their names (seg-<start>-<end>-…, hex).
    stored=$(for o in $objects; do basename "$o"; done |
        python3 -c 'import sys; print(sum(int(l.split("-")[2], 16) - int(l.split("-")[1], 16) for l in sys.stdin))')
    local best_log=999999 best_grep=999999 rss=0 n_log=0 n_grep=0
    for _ in $(seq 1 "$runs"); do
        local t0 t1
        t0=$(date +%s.%N)
        /usr/bin/time -v -o "$work/time.txt" "$bin" "${global[@]}" log 'key:00000012*' --json >"$work/log.out" 2>"$work/log.err"
        t1=$(date +%s.%N)
        best_log=$(python3 -c "print(min($best_log, $t1 - $t0))")
        rss=$(grep 'Maximum resident' "$work/time.txt" | awk '{print $NF}')
        n_log=$(wc -l <"$work/log.out")
        t0=$(date +%s.%N)
        # shellcheck disable=SC2086
        n_grep=$(zstd -dc $objects | grep -ac 'key:00000012' || true)
        t1=$(date +%s.%N)
        best_grep=$(python3 -c "print(min($best_grep, $t1 - $t0))")
    done
    python3 - "$1" "$stored" "$best_log" "$best_grep" "$rss" "$n_log" "$n_grep" "$(echo "$objects" | wc -l)" <<'PY'
import sys
label, stored, tl, tg, rss, nl, ng, objs = sys.argv[1:]
mb = int(stored) / 2**20
print(f"{label}: {mb:.0f} MiB of stream in {objs} segments")
print(f"  aofvault log:      {float(tl):6.2f} s  {mb/float(tl):7.1f} MiB/s  {nl} writes  peak RSS {int(rss)/1024:.0f} MiB")
print(f"  zstd -dc | grep:   {float(tg):6.2f} s  {mb/float(tg):7.1f} MiB/s  {ng} lines")
print(f"  log / grep time:   {float(tl)/float(tg):.2f}")
PY
}

fill "$mb"
wait_stored
measure "history 1"
fill $((mb * 2))
wait_stored
kill "$agent"
wait "$agent" 2>/dev/null || true
measure "history 2 (twice as large)"
