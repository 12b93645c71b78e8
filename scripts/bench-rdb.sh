#!/usr/bin/env bash
# RDB decode speed against redis-server's own load time, on the same file, in the same run.
#
# 1. Starts a throwaway redis-server on 127.0.0.1 and fills it with mixed types until its
#    dump.rdb reaches TARGET_MB (default 500): strings via DEBUG POPULATE, and rounds of a Lua
#    script writing listpack and hashtable hashes, quicklist lists, listpack and skiplist zsets,
#    hashtable sets and intsets. SAVE.
# 2. RUNS rounds, alternating so that a busy machine slows both alike: start redis-server on
#    that file and read "DB loaded from disk: X seconds" from its log; then run the decoder
#    (formats/examples/rdb_decode.rs, release build) on the file.
# 3. Prints the best time of each and the ratio.
#
# Usage: scripts/bench-rdb.sh [TARGET_MB] [RUNS]      (needs redis-server, redis-cli, cargo)
# Keep the file for later runs (and reuse it if there): KEEP_DIR=/some/dir scripts/bench-rdb.sh ...
# Compare with another build of the decoder in the same rounds (e.g. one built from main):
# BASELINE=/path/to/rdb_decode scripts/bench-rdb.sh ...   Each round prints the load average
# and the CPU seconds (user + system) of each decoder run.
set -euo pipefail

target_mb=${1:-500}
runs=${2:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${KEEP_DIR:-$(mktemp -d -t aofvault-bench-rdb.XXXXXX)}
mkdir -p "$work"
port=$((20000 + RANDOM % 20000))
pid=""

cleanup() {
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
    if [[ -z "${KEEP_DIR:-}" ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

cli() { redis-cli -p "$port" "$@"; }

start_server() { # $1 = log file name
    redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --dbfilename dump.rdb --save '' \
        --appendonly no --enable-debug-command yes --logfile "$work/$1" --daemonize no &
    pid=$!
    for _ in $(seq 1 6000); do
        if [[ "$(cli ping 2>/dev/null)" == "PONG" ]]; then return; fi
        sleep 0.05
    done
    echo "redis-server did not start; log:" >&2
    cat "$work/$1" >&2
    exit 1
}

stop_server() {
    cli shutdown nosave >/dev/null 2>&1 || true
    wait "$pid" 2>/dev/null || true
    pid=""
}

# One round: N keys of mixed types under the prefix ARGV[1].
read -r -d '' ROUND <<'LUA' || true
local p = ARGV[1]
local n = tonumber(ARGV[2])
for i = 1, n do
  local k = p .. i
  local kind = i % 7
  local args = {}
  if kind == 0 then
    for j = 1, 40 do args[#args + 1] = 'field' .. j; args[#args + 1] = 'value-' .. i .. '-' .. j end
    redis.call('HSET', 'h:' .. k, unpack(args))
  elseif kind == 1 then
    for j = 1, 80 do args[#args + 1] = 'element-' .. (i * j) % 100003 end
    redis.call('RPUSH', 'l:' .. k, unpack(args))
  elseif kind == 2 then
    for j = 1, 60 do args[#args + 1] = tostring(j * 1.5); args[#args + 1] = 'm' .. i .. '-' .. j end
    redis.call('ZADD', 'z:' .. k, unpack(args))
  elseif kind == 3 then
    for j = 1, 50 do args[#args + 1] = 'member-' .. i .. '-' .. j end
    redis.call('SADD', 's:' .. k, unpack(args))
  elseif kind == 4 then
    for j = 1, 200 do args[#args + 1] = 'f' .. j; args[#args + 1] = 'a-longer-value-' .. i .. '-' .. j end
    redis.call('HSET', 'H:' .. k, unpack(args))
  elseif kind == 5 then
    for j = 1, 200 do args[#args + 1] = tostring(j / 7); args[#args + 1] = 'member-' .. i .. '-' .. j end
    redis.call('ZADD', 'Z:' .. k, unpack(args))
  else
    for j = 1, 100 do args[#args + 1] = tostring(i * 1000 + j) end
    redis.call('SADD', 'i:' .. k, unpack(args))
  end
end
return n
LUA

per_round=20000
if [[ -n "${KEEP_DIR:-}" && -s "$work/dump.rdb" ]]; then
    echo "== reusing $work/dump.rdb"
else
    echo "== generating a ~${target_mb} MB RDB in $work (port $port)"
    start_server gen.log
    cli config set lua-time-limit 0 >/dev/null 2>&1 || true
    cli eval "$ROUND" 0 "r0:" "$per_round" >/dev/null
    cli debug populate 100000 "str:r0:" 100 >/dev/null
    cli save >/dev/null
    round_bytes=$(stat -c %s "$work/dump.rdb")
    rounds=$(( (target_mb * 1024 * 1024 + round_bytes - 1) / round_bytes ))
    echo "   one round = $round_bytes bytes; $rounds rounds"
    for r in $(seq 1 $((rounds - 1))); do
        cli eval "$ROUND" 0 "r$r:" "$per_round" >/dev/null
        cli debug populate 100000 "str:r$r:" 100 >/dev/null
    done
    cli save >/dev/null
    size=$(stat -c %s "$work/dump.rdb")
    keys=$(cli dbsize)
    stop_server
    echo "   dump.rdb: $size bytes, $keys keys"
fi
size=$(stat -c %s "$work/dump.rdb")
echo "== building the decoder"
(cd "$repo" && cargo build --release -q -p aofvault-formats --example rdb_decode)
decoder="${CARGO_TARGET_DIR:-$repo/target}/release/examples/rdb_decode"

# Alternate the two, so that a busy machine slows both alike.
echo "== $runs rounds: redis-server start-up load, then the decoder"
best_redis=""
best_ours=""
faster() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
best_base=""
# One decoder run: prints its line, then "WALL CPU" (CPU = user + system, from /usr/bin/time).
run_decoder() { # $1 = decoder binary
    local line cpu
    line=$(/usr/bin/time -f 'cpu %U %S' -o "$work/time.out" "$1" "$work/dump.rdb" 1)
    cpu=$(awk '/^cpu/ { printf "%.2f", $2 + $3 }' "$work/time.out")
    echo "$line"
    echo "$(sed -n 's/.* in \([0-9.]*\) seconds.*/\1/p' <<<"$line") $cpu"
}
for i in $(seq 1 "$runs"); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    start_server "load$i.log"
    keys=$(cli dbsize)
    # The server's CPU seconds so far (user + system): its start-up is almost all loading.
    redis_cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$pid/stat")
    stop_server
    t=$(sed -n 's/.*DB loaded from disk: \([0-9.]*\) seconds.*/\1/p' "$work/load$i.log" | tail -1)
    if [[ -z "$t" ]]; then echo "no load time in the log:" >&2; cat "$work/load$i.log" >&2; exit 1; fi
    echo "   round $i (load average $load): redis-server loaded $keys keys in $t seconds [CPU $redis_cpu s]"
    if [[ -z "$best_redis" ]] || faster "$t" "$best_redis"; then best_redis=$t; fi
    redis_t=$t
    out=$(run_decoder "$decoder")
    read -r t cpu <<<"$(tail -1 <<<"$out")"
    echo "   $(head -1 <<<"$out") [CPU $cpu s] = $(awk -v r="$redis_t" -v o="$t" 'BEGIN { printf "%.2fx", r / o }')"
    if [[ -z "$best_ours" ]] || faster "$t" "$best_ours"; then best_ours=$t; fi
    if [[ -n "${BASELINE:-}" ]]; then
        out=$(run_decoder "$BASELINE")
        read -r t cpu <<<"$(tail -1 <<<"$out")"
        echo "   baseline: $(head -1 <<<"$out") [CPU $cpu s] = $(awk -v r="$redis_t" -v o="$t" 'BEGIN { printf "%.2fx", r / o }')"
        if [[ -z "$best_base" ]] || faster "$t" "$best_base"; then best_base=$t; fi
    fi
done

mb=$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }')
echo
echo "file:          $mb MiB, $keys keys"
echo "redis-server:  $best_redis s (best of $runs)"
echo "decoder:       $best_ours s (best of $runs)"
awk -v r="$best_redis" -v o="$best_ours" -v s="$size" 'BEGIN {
    printf "decoder speed: %.0f MiB/s; redis-server: %.0f MiB/s; decoder is %.2fx faster\n", s / 1048576 / o, s / 1048576 / r, r / o }'
if [[ -n "$best_base" ]]; then
    awk -v b="$best_base" -v o="$best_ours" -v r="$best_redis" 'BEGIN {
        printf "baseline:      %s s (best of the same rounds); the decoder is %.2fx faster than it, the baseline %.2fx redis-server\n", b, b / o, r / b }'
fi
