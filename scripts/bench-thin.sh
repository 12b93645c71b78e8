#!/usr/bin/env bash
# Live restore of a history that writes every key five times: `aofvault restore --to` (which
# leaves out the writes a later whole overwrite hides) against `redis-cli --pipe` of the very
# same log (the source's AOF stream) into a fresh redis-server, in the same run.
#
#  1. a redis-server 7 source (AOF on, `--auto-aof-rewrite-percentage 0`: the whole history
#     stays in the log) gets KEYS keys, each SET five times in five rounds (values 32-160
#     bytes of hex), through `redis-cli --pipe`; `aofvault backup` ships it into a file://
#     repository;
#  2. RUNS times, alternating: `redis-cli --pipe` of the source's AOF stream into a fresh
#     server; `aofvault restore --to` into a fresh server; `aofvault restore --to
#     --exact-replay` into a fresh server (for reference). Every target must end with the
#     source's DBSIZE (checked). The ratio pipe / restore is taken run by run (pairs), and the
#     medians are printed.
#
# Usage: scripts/bench-thin.sh [KEYS] [RUNS]    e.g. scripts/bench-thin.sh 500000 5
# Needs redis-server, redis-cli, cargo, python3, bc.
set -euo pipefail

keys=${1:-500000}
runs=${2:-5}
repo_root=$(cd "$(dirname "$0")/.." && pwd)
work=${KEEP_DIR:-$(mktemp -d -t aofvault-bench-thin.XXXXXX)}
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

now() { date +%s.%N; }
port() { # a random port nothing listens on
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        if ! (: >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
}
wait_ping() {
    for _ in $(seq 1 600); do
        if [[ "$(redis-cli -p "$1" ping 2>/dev/null)" == "PONG" ]]; then return; fi
        sleep 0.05
    done
    echo "server on port $1 did not start" >&2
    exit 1
}
start() { # dir port
    mkdir -p "$1"
    redis-server --port "$2" --bind 127.0.0.1 --dir "$1" --appendonly yes --save '' \
        --auto-aof-rewrite-percentage 0 --logfile "$1/redis.log" --daemonize no &
    pids+=($!)
    wait_ping "$2"
}
stop_targets() { # every server but the source
    for p in "${pids[@]:1}"; do kill "$p" 2>/dev/null || true; done
    pids=("${pids[0]}")
}

# Five rounds; in each, every key is SET once (a new value each time).
python3 - "$keys" >"$work/load.resp" <<'PY'
import random, sys
n = int(sys.argv[1])
rng = random.Random(42)
pool = [rng.randbytes(16 + i % 64).hex().encode() for i in range(4099)]
out = sys.stdout.buffer
for r in range(5):
    buf = []
    for i in range(n):
        k = b"key:%d" % i
        v = pool[(i * 5 + r) % len(pool)]
        buf.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
        if len(buf) >= 100000:
            out.write(b"".join(buf)); buf = []
    out.write(b"".join(buf))
PY

src_port=$(port)
start "$work/source" "$src_port"
redis-cli -p "$src_port" --pipe <"$work/load.resp" >/dev/null
src_keys=$(redis-cli -p "$src_port" dbsize)
"$bin" backup --source "$work/source" --server "redis://127.0.0.1:$src_port" --repo "file://$work/repo" \
    --instance b --state-dir "$work/state" >/dev/null 2>"$work/backup.log"
cat "$work"/source/appendonlydir/*.incr.aof >"$work/same.resp"
stream_mb=$(du -m "$work/same.resp" | cut -f1)
commands=$(grep -c '^\*' "$work/same.resp" || true)

timed() { local t0 t1; t0=$(now); "$@"; t1=$(now); echo "$t1 - $t0" | bc; }
pipe_once() { redis-cli -p "$1" --pipe <"$work/same.resp" >"$work/pipe.out" 2>&1; }
restore_once() { # port [flags]
    local p=$1; shift
    "$bin" --repo "file://$work/repo" --instance b --state-dir "$work/state" \
        restore --to "redis://127.0.0.1:$p" "$@" >"$work/restore.out" 2>"$work/restore.err"
}
check() { # port what
    local n; n=$(redis-cli -p "$1" dbsize)
    if [[ "$n" != "$src_keys" ]]; then
        echo "$2: $n keys, the source has $src_keys" >&2
        exit 1
    fi
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

: >"$work/pipe.s"; : >"$work/thin.s"; : >"$work/exact.s"; : >"$work/ratio"; : >"$work/ratio_exact"
for run in $(seq 1 "$runs"); do
    p=$(port); start "$work/pipe-$run" "$p"
    pipe_s=$(timed pipe_once "$p"); check "$p" "redis-cli --pipe"
    p=$(port); start "$work/thin-$run" "$p"
    thin_s=$(timed restore_once "$p"); check "$p" "restore --to"
    p=$(port); start "$work/exact-$run" "$p"
    exact_s=$(timed restore_once "$p" --exact-replay); check "$p" "restore --to --exact-replay"
    stop_targets
    rm -rf "$work/pipe-$run" "$work/thin-$run" "$work/exact-$run"
    echo "$pipe_s" >>"$work/pipe.s"; echo "$thin_s" >>"$work/thin.s"; echo "$exact_s" >>"$work/exact.s"
    echo "scale=3; $pipe_s / $thin_s" | bc >>"$work/ratio"
    echo "scale=3; $pipe_s / $exact_s" | bc >>"$work/ratio_exact"
    echo "run $run: pipe ${pipe_s}s, restore ${thin_s}s, restore --exact-replay ${exact_s}s" >&2
done

grep -h "left out" "$work/restore.out" >&2 || true
echo "history: $src_keys keys written 5 times, $commands commands, AOF stream ${stream_mb} MiB; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-44s %10s\n' measurement "median s"
printf '%-44s %10.2f\n' "redis-cli --pipe of the AOF stream" "$(median <"$work/pipe.s")"
printf '%-44s %10.2f\n' "aofvault restore --to" "$(median <"$work/thin.s")"
printf '%-44s %10.2f\n' "aofvault restore --to --exact-replay" "$(median <"$work/exact.s")"
echo "restore --to vs redis-cli --pipe: $(median <"$work/ratio")x (median of per-run pipe time / restore time; target >= 2)"
echo "restore --to --exact-replay vs redis-cli --pipe: $(median <"$work/ratio_exact")x"
