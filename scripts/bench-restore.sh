#!/usr/bin/env bash
# Restore speed and memory, against the plain tools, on the same data in the same run.
#
# For each server kind (redis-server 7, kevy with 4 shards):
#  1. a source server is filled with KEYS keys (80 % strings of 64-200 bytes, 10 % hashes of 4
#     fields, 10 % lists of 4 items; one write command per key) and `aofvault backup` ships it
#     into a file:// repository (zstd);
#  2. live: `aofvault restore --to` into a fresh server of the same kind, against
#     `redis-cli --pipe` of the very same commands (the source's AOF stream) into another fresh
#     server of that kind; both end with the same DBSIZE (checked);
#  3. files: `aofvault restore --to-dir` (download, decode, CRC check, fsync, rename) against a
#     plain download of the repository's objects (`cp -r` of the file:// repository + fsync of
#     every file), against that plus `zstd -d` of every object (2 in parallel), and against a
#     plain copy of the restored files (`cp -r` + fsync);
#  4. peak RSS of each restore (`/usr/bin/time -v`).
# Prints one line per measurement and the ratios (pipe time / restore time: > 1 means the
# restore is faster; restore time / plain time for files: 1.20 = 20 % overhead).
#
# Every measurement is the best of RUNS (default 3), the contenders alternating.
#
# BASE_BIN=/path/to/an/older/aofvault adds that binary's `restore --to` as one more contender in
# the same runs (e.g. main's release build, to measure a change paired on a noisy machine).
#
# Usage: scripts/bench-restore.sh [KEYS] [KINDS] [RUNS]   e.g. scripts/bench-restore.sh 500000 "redis kevy" 3
# Needs redis-server, redis-cli, kevy (~/.cargo/bin/kevy or KEVY_BIN), cargo, python3, /usr/bin/time.
set -euo pipefail

keys=${1:-500000}
kinds=${2:-"redis kevy"}
runs=${3:-3}
repo_root=$(cd "$(dirname "$0")/.." && pwd)
work=${KEEP_DIR:-$(mktemp -d -t aofvault-bench-restore.XXXXXX)}
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

now() { date +%s.%N; }
port() { # a random port nothing listens on
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        if ! (: >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
}

wait_ping() { # port
    for _ in $(seq 1 600); do
        if [[ "$(redis-cli -p "$1" ping 2>/dev/null)" == "PONG" ]]; then return; fi
        sleep 0.05
    done
    echo "server on port $1 did not start; its log:" >&2
    cat "$work"/*/*-"$1".log >&2 || true
    exit 1
}

start() { # kind dir port -> starts a server, records its pid
    local kind=$1 dir=$2 p=$3
    mkdir -p "$dir"
    if [[ $kind == redis ]]; then
        redis-server --port "$p" --bind 127.0.0.1 --dir "$dir" --appendonly yes --save '' --auto-aof-rewrite-percentage 0 \
            --logfile "$dir/../redis-$p.log" --daemonize no &
    else
        printf '[persistence]\naof = true\nappendfsync = "everysec"\n' >"$dir/../kevy-$p.toml"
        env -u KEVY_DIR "$kevy_bin" --config "$dir/../kevy-$p.toml" --bind 127.0.0.1 --port "$p" \
            --dir "$dir" --threads 4 >"$dir/../kevy-$p.log" 2>&1 &
    fi
    pids+=($!)
    wait_ping "$p"
}

dbsize() { redis-cli -p "$1" dbsize; }

# The data: one RESP command per key.
python3 - "$keys" >"$work/load.resp" <<'PY'
import random, sys
n = int(sys.argv[1])
rng = random.Random(42)
out = sys.stdout.buffer
def text(k):  # hex: compresses about 2:1, like real data rather than "xxxx"
    return rng.randbytes(k // 2).hex()
def cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    out.write(b"".join(parts))
for i in range(n):
    k = i % 10
    if k == 8:
        cmd("HSET", f"h:{i}", "f1", f"a{i}", "f2", text(16), "f3", text(24), "f4", str(i))
    elif k == 9:
        cmd("RPUSH", f"l:{i}", f"x{i}", text(30), "z", str(i))
    else:
        cmd("SET", f"s:{i}", text(60 + (i * 7) % 140))
PY

printf '%-6s %-34s %10s %12s\n' kind measurement seconds peak_rss_kib
report() { printf '%-6s %-34s %10.2f %12s\n' "$1" "$2" "$3" "${4:--}"; }

rss_of() { grep 'Maximum resident' "$1" | awk '{print $NF}'; }

for kind in $kinds; do
    d="$work/$kind"
    mkdir -p "$d"
    src_port=$(port)
    start "$kind" "$d/source" "$src_port"
    redis-cli -p "$src_port" --pipe <"$work/load.resp" >/dev/null 2>&1 || true
    sleep 2 # kevy writes its AOF within a second (everysec)
    src_keys=$(dbsize "$src_port")
    "$bin" backup --source "$d/source" --server "redis://127.0.0.1:$src_port" --repo "file://$d/repo" \
        --instance b --state-dir "$d/state" >/dev/null 2>"$d/backup.log"
    # The same commands as the restore replays: the source's AOF stream.
    if [[ $kind == redis ]]; then
        cat "$d"/source/appendonlydir/*.incr.aof >"$d/same.resp"
    else
        : >"$d/same.resp"
        for f in "$d"/source/aof-*.aof; do tail -c +10 "$f" >>"$d/same.resp"; done
    fi
    stream_mb=$(du -m "$d/same.resp" | cut -f1)
    repo_mb=$(du -sm "$d/repo" | cut -f1)

    # Best of $runs for every contender, alternating them (the machine is shared: noisy).
    best() { if [[ -z "$1" ]] || (( $(echo "$2 < $1" | bc) )); then echo "$2"; else echo "$1"; fi; }
    timed() { local t0 t1; t0=$(now); "$@"; t1=$(now); echo "$t1 - $t0" | bc; }
    pipe_s="" live_s="" files_s="" download_s="" unzstd_s="" copy_s="" live_rss=0 files_rss=0
    base_s="" base_rss=0
    pipe_once() { redis-cli -p "$1" --pipe <"$d/same.resp" >"$d/pipe.out" 2>&1 || true; }
    live_once() {
        /usr/bin/time -v "$bin" --repo "file://$d/repo" --instance b --state-dir "$d/state" \
            restore --to "redis://127.0.0.1:$1" >"$d/live.out" 2>"$d/live.time"
    }
    base_once() {
        /usr/bin/time -v "$BASE_BIN" --repo "file://$d/repo" --instance b --state-dir "$d/state" \
            restore --to "redis://127.0.0.1:$1" >"$d/base.out" 2>"$d/base.time"
    }
    files_once() {
        /usr/bin/time -v "$bin" --repo "file://$d/repo" --instance b --state-dir "$d/state" \
            restore --to-dir "$d/files" >"$d/files.out" 2>"$d/files.time"
    }
    download_once() { cp -r "$d/repo" "$d/download" && find "$d/download" -type f -exec sync {} +; }
    unzstd_once() {
        mkdir -p "$d/unzstd"
        find "$d/repo" -name '*.zst' -print0 |
            xargs -0 -P 2 -I{} sh -c 'zstd -qdc "$1" >"$2/$(basename "$1").out"' _ {} "$d/unzstd"
        find "$d/unzstd" -type f -exec sync {} +
    }
    copy_once() { cp -r "$d/files" "$d/copy" && find "$d/copy" -type f -exec sync {} +; }
    for run in $(seq 1 "$runs"); do
        pipe_port=$(port)
        start "$kind" "$d/pipe-target-$run" "$pipe_port"
        pipe_s=$(best "$pipe_s" "$(timed pipe_once "$pipe_port")")
        live_port=$(port)
        start "$kind" "$d/live-target-$run" "$live_port"
        # With BASE_BIN, every other run times the older build first: neither of the two always
        # follows the pipe (whose target may still be writing its AOF).
        if [[ -z "${BASE_BIN:-}" || $((run % 2)) == 1 ]]; then
            live_s=$(best "$live_s" "$(timed live_once "$live_port")")
        fi
        if [[ -n "${BASE_BIN:-}" ]]; then
            base_port=$(port)
            start "$kind" "$d/base-target-$run" "$base_port"
            base_s=$(best "$base_s" "$(timed base_once "$base_port")")
            base_rss=$(( $(rss_of "$d/base.time") > base_rss ? $(rss_of "$d/base.time") : base_rss ))
            if [[ "$(dbsize "$base_port")" != "$src_keys" ]]; then
                echo "key counts differ: source $src_keys, BASE_BIN restore $(dbsize "$base_port")" >&2
                exit 1
            fi
            if [[ $((run % 2)) == 0 ]]; then
                live_s=$(best "$live_s" "$(timed live_once "$live_port")")
            fi
        fi
        live_rss=$(( $(rss_of "$d/live.time") > live_rss ? $(rss_of "$d/live.time") : live_rss ))
        pipe_keys=$(dbsize "$pipe_port")
        live_keys=$(dbsize "$live_port")
        if [[ "$src_keys" != "$live_keys" || "$src_keys" != "$pipe_keys" ]]; then
            echo "key counts differ: source $src_keys, pipe $pipe_keys, restore $live_keys" >&2
            exit 1
        fi
        for p in "${pids[@]:1}"; do kill "$p" 2>/dev/null || true; done
        pids=("${pids[0]}")
        rm -rf "$d/pipe-target-$run" "$d/live-target-$run" "$d/base-target-$run" "$d/files" "$d/download" "$d/unzstd" "$d/copy"
        files_s=$(best "$files_s" "$(timed files_once)")
        files_rss=$(( $(rss_of "$d/files.time") > files_rss ? $(rss_of "$d/files.time") : files_rss ))
        download_s=$(best "$download_s" "$(timed download_once)")
        unzstd_s=$(best "$unzstd_s" "$(timed unzstd_once)")
        copy_s=$(best "$copy_s" "$(timed copy_once)")
    done
    files_mb=$(du -sm "$d/files" | cut -f1)
    report "$kind" "redis-cli --pipe (${stream_mb} MiB)" "$pipe_s"
    report "$kind" "aofvault restore --to" "$live_s" "$live_rss"
    if [[ -n "${BASE_BIN:-}" ]]; then report "$kind" "BASE_BIN restore --to" "$base_s" "$base_rss"; fi
    grep -h "phase done" "$d/live.time" | sed 's/.*phase=\([a-z]*\).*seconds="\([0-9.]*\)".*/    (last run: \1 \2 s)/' >&2
    report "$kind" "aofvault restore --to-dir (${files_mb} MiB)" "$files_s" "$files_rss"
    report "$kind" "plain download: cp + fsync of the repo" "$download_s"
    report "$kind" "plain download + zstd -d + fsync" "$unzstd_s"
    report "$kind" "plain copy + fsync of the restored files" "$copy_s"

    echo "$kind: $src_keys keys, AOF stream ${stream_mb} MiB, repository ${repo_mb} MiB (zstd)"
    echo "$kind: live restore vs redis-cli --pipe: $(echo "scale=2; $pipe_s / $live_s" | bc)x" \
        "(pipe time / restore time)"
    if [[ -n "${BASE_BIN:-}" ]]; then
        echo "$kind: BASE_BIN live restore vs redis-cli --pipe: $(echo "scale=2; $pipe_s / $base_s" | bc)x;" \
            "this build vs BASE_BIN: $(echo "scale=2; $base_s / $live_s" | bc)x"
    fi
    echo "$kind: file restore vs a plain download of the repository objects:" \
        "$(echo "scale=2; $files_s / $download_s" | bc)x; vs download + zstd -d:" \
        "$(echo "scale=2; $files_s / $unzstd_s" | bc)x; vs a plain copy of the restored files:" \
        "$(echo "scale=2; $files_s / $copy_s" | bc)x (restore time / plain time)"
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
done
