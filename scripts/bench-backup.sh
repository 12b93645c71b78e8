#!/usr/bin/env bash
# `aofvault backup` of a large AOF against `zstd -3 -T1` of the same file, in the same run.
#
# 1. A redis-server 7.0 (AOF on, its own rewrites off) takes SIZE_MB of `SET`s of 1 KiB values
#    through `redis-cli --pipe` (keys over 1 M; values of random hex text, which zstd halves —
#    like real data, unlike redis-benchmark's one repeated byte, which zstd shrinks 180-fold
#    and so measures nothing but the fixed costs), then stays up idle (`backup` talks to it).
# 2. `farm-bench --vs` alternates: A = `aofvault backup` of that AOF into an emptied
#    file:// repository and state dir (the time to take the whole backlog: read, scan,
#    CRC-32C, zstd level 3, store); B = `zstd -3 -T1` of the same file to /dev/null (one core
#    compressing the same bytes: the single-threaded reference). The ratio B/A > 1 means the
#    backup is faster than compressing the file alone on one core.
# 3. Peak RSS of the backup is farm-bench's `peak` for A.
#
# Usage: scripts/bench-backup.sh [SIZE_MB] [RUNS]    (default 1024 and 3)
# Needs redis-server, redis-cli, python3, zstd, farm-bench, cargo.
set -euo pipefail
size_mb=${1:-1024}
runs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
work=${KEEP_DIR:-$(mktemp -d -t aofvault-bench-backup.XXXXXX)}
mkdir -p "$work/data"
port=$((20000 + RANDOM % 20000))
cleanup() {
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    wait 2>/dev/null || true
    if [[ -z "${KEEP_DIR:-}" ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

(cd "$root" && cargo build --release -q -p aofvault)
bin="${CARGO_TARGET_DIR:-$root/target}/release/aofvault"

redis-server --port "$port" --bind 127.0.0.1 --dir "$work/data" --appendonly yes --appendfsync no \
    --auto-aof-rewrite-percentage 0 --save '' --daemonize no --logfile "$work/redis.log" &
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
incr() { ls -1 "$work"/data/appendonlydir/*.incr.aof | tail -1; }
if [[ $(stat -c %s "$(incr)") -lt $((size_mb * 1024 * 1024)) ]]; then
    n=$((size_mb * 1024 * 1024 / 1060)) # ~1060 AOF bytes per SET with a 1 KiB value
    echo "== writing ~${size_mb} MB of AOF ($n SETs)" >&2
    python3 - "$n" <<'PY' | redis-cli -p "$port" --pipe >/dev/null
import random, sys
n = int(sys.argv[1])
rng = random.Random(42)
out = sys.stdout.buffer
for i in range(n):
    key = b"key:%d" % rng.randrange(1_000_000)
    value = rng.randbytes(512).hex().encode()
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value))
PY
    sleep 2
fi
aof=$(incr)
bytes=$(stat -c %s "$aof")
echo "== AOF: $aof, $bytes bytes; load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

backup="rm -rf $work/repo $work/state && mkdir -p $work/state && $bin backup --source $work/data \
--server redis://127.0.0.1:$port --repo file://$work/repo --instance b --state-dir $work/state >/dev/null 2>$work/backup.log"
farm-bench -n "$runs" --timeout 1800 --vs "sh -c 'zstd -3 -T1 -q -c $aof >/dev/null'" -- sh -c "$backup"
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== repository: $(du -sb "$work/repo" | cut -f1) bytes for $bytes bytes of AOF"
