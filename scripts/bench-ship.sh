#!/usr/bin/env bash
# End-to-end shipping benchmark for `aofvault run` against a real redis-server (AOF on), with a
# file:// repository on the same disk. Prints one result table; numbers go to BENCHMARKS.md.
#
#   scripts/bench-ship.sh [AOF_MB]      (default 512; 2048 for the issue's 2 GB figure)
#
# It measures, in one run:
#   1. the server's own AOF write rate under redis-benchmark (SET, 1 KiB values, pipelined) —
#      the reference: the fastest this machine produces AOF bytes;
#   2. the agent's sustained shipping rate while following that load (bytes stored / time from
#      the first write to lag 0), as a ratio to (1);
#   3. agent CPU seconds per GB shipped and peak RSS (VmHWM) while shipping;
#   4. objects stored per minute under load, and while the server is idle (target 0);
#   5. a cold start on an existing AOF_MB file: time to ship it, against a plain copy of the file,
#      and peak RSS (target ≤ 64 MiB).
set -euo pipefail
MB=${1:-512}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q -p aofvault --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/aofvault"
W=$(mktemp -d /tmp/aofvault-bench-XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; redis-cli -p $PORT shutdown nosave >/dev/null 2>&1 || true; sleep 1; rm -rf "$W"' EXIT
PORT=$(( 20000 + RANDOM % 10000 ))
mkdir -p "$W/data" "$W/state"
redis-server --port $PORT --bind 127.0.0.1 --dir "$W/data" --appendonly yes --appendfsync no \
  --auto-aof-rewrite-percentage 0 --save '' --daemonize no --logfile "$W/redis.log" &
for _ in $(seq 50); do redis-cli -p $PORT ping >/dev/null 2>&1 && break; sleep 0.1; done
incr() { ls -1 "$W"/data/appendonlydir/*.incr.aof | tail -1; }
size() { stat -c %s "$(incr)"; }
objects() { find "$W/repo" -name 'seg-*' 2>/dev/null | wc -l; }
cpu_ticks() { awk '{print $14+$15}' /proc/$1/stat; }
hwm_kb() { awk '/VmHWM/{print $2}' /proc/$1/status; }
# Compaction off: a rewrite in the middle would measure something else.
printf '[compact]\nenabled = false\n' > "$W/agent.toml"
start_agent() {
  "$BIN" --config "$W/agent.toml" --source "$W/data" --server redis://127.0.0.1:$PORT --repo "file://$W/repo" --instance bench \
    --state-dir "$W/state" --log-level warn run 2>"$W/agent.log" &
  AGENT=$!
  sleep 1
}
lag() { "$BIN" --state-dir "$W/state" --instance bench --repo "file://$W/repo" status --json 2>/dev/null |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(s["lag_bytes"] for s in d["shards"]))' 2>/dev/null || echo 1; }
lag_s() { "$BIN" --state-dir "$W/state" --instance bench --repo "file://$W/repo" status --json 2>/dev/null |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(max(s["lag_seconds"] for s in d["shards"]))' 2>/dev/null || true; }
wait_lag0() { while [ "$(lag)" != 0 ]; do sleep 0.2; done; }
TICK=$(getconf CLK_TCK)

start_agent
wait_lag0
# Idle: one minute without writes.
IDLE=${IDLE_SECONDS:-60}
o0=$(objects); sleep "$IDLE"; o1=$(objects)
IDLE_PER_MIN=$(( (o1 - o0) * 60 / IDLE ))

# Load: write MB megabytes of AOF as fast as the server can.
N=$(( MB * 1024 * 1024 / 1060 ))   # ~1060 AOF bytes per SET with a 1 KiB value
s0=$(size); c0=$(cpu_ticks $AGENT); o0=$(objects)
t0=$(date +%s.%N)
( while :; do lag_s; sleep 0.5; done ) > "$W/lag.samples" 2>/dev/null &
SAMPLER=$!
redis-benchmark -p $PORT -t set -n $N -d 1024 -P 32 -r 100000 -q >"$W/bench.out" 2>&1 || { cat "$W/bench.out"; exit 1; }
t1=$(date +%s.%N)
kill $SAMPLER 2>/dev/null || true
MAX_LAG_S=$(sort -g "$W/lag.samples" | tail -1)
wait_lag0
t2=$(date +%s.%N)
s1=$(size); c1=$(cpu_ticks $AGENT); o1=$(objects)
BYTES=$((s1 - s0))
SERVER_RATE=$(python3 -c "print(round($BYTES/1048576/($t1-$t0),1))")
SHIP_RATE=$(python3 -c "print(round($BYTES/1048576/($t2-$t0),1))")
RATIO=$(python3 -c "print(round(($t1-$t0)/($t2-$t0),3))")
CPU_PER_GB=$(python3 -c "print(round(($c1-$c0)/$TICK/($BYTES/1073741824),2))")
LOAD_PER_MIN=$(python3 -c "print(round(($o1-$o0)/(($t2-$t0)/60),1))")
HWM_LOAD=$(hwm_kb $AGENT)
kill -TERM $AGENT; wait $AGENT || true

# Cold start on the existing file: a new state dir and repository.
rm -rf "$W/repo" "$W/state"; mkdir -p "$W/state"
t3=$(date +%s.%N); start_agent; wait_lag0; t4=$(date +%s.%N)
COLD_RATE=$(python3 -c "print(round($s1/1048576/($t4-$t3),1))")
HWM_COLD=$(hwm_kb $AGENT)
# Reference: a plain copy of the same file onto the same disk, synced.
t5=$(date +%s.%N); dd if="$(incr)" of="$W/copy" bs=1M conv=fsync status=none; t6=$(date +%s.%N)
RAW_COPY=$(python3 -c "print(round($s1/1048576/($t6-$t5),1))")
kill -TERM $AGENT; wait $AGENT || true

cat <<EOT
AOF bytes written under load      : $BYTES ($MB MB target)
server AOF write rate (reference) : $SERVER_RATE MB/s
agent shipping rate (to lag 0)    : $SHIP_RATE MB/s   ratio to server: $RATIO
largest lag seen under load (RPO)  : ${MAX_LAG_S:-?} s (status sampled every 0.5 s)
agent CPU seconds per GB shipped  : $CPU_PER_GB
agent peak RSS under load         : $((HWM_LOAD / 1024)) MiB
objects stored per minute, load   : $LOAD_PER_MIN
objects stored per minute, idle   : $IDLE_PER_MIN
cold start on a $((s1 / 1048576)) MB AOF       : $COLD_RATE MB/s (plain copy of the same file: $RAW_COPY MB/s), peak RSS $((HWM_COLD / 1024)) MiB
EOT
