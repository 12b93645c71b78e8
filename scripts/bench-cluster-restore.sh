#!/usr/bin/env bash
# Restore of a Redis Cluster backup into a fresh cluster of the same shape, against the
# reference: each source node's AOF piped into its target node with `redis-cli --pipe`, all
# three at once, in the same run (issue 14's benchmark).
#   - a 3-primary redis-server cluster (AOF on) on 127.0.0.1, an agent beside each node with
#     `--cluster prod` (the release build), `redis-benchmark --cluster` writing N SETs over ~N keys;
#   - `aofvault restore --cluster prod --to <fresh 3-primary cluster>` timed with
#     /usr/bin/time (wall, peak RSS);
#   - the reference: `cat incr files | redis-cli --pipe` per node into a second fresh cluster;
#   - both targets' key counts compared with the source's.
# Usage: scripts/bench-cluster-restore.sh [N ...]   (default: 250000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(250000 1000000)
if [ ${#sizes[@]} -gt 1 ]; then # one size per run, each on fresh servers
    for n in "${sizes[@]}"; do "$0" "$n"; done
    exit 0
fi
cargo build --release -q -p aofvault
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/aofvault"

work=$(mktemp -d /tmp/aofvault-bench-cluster.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
# A free port whose cluster bus port (+10000) is free too.
free_port() {
    python3 -c '
import random, socket
while True:
    p = random.randint(20000, 55000)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass'
}

# start_cluster NAME: three primaries; their ports in PORTS.
start_cluster() {
    local ports=() p dir
    for i in 0 1 2; do
        p=$(free_port)
        dir="$work/$1-$i"
        mkdir -p "$dir"
        redis-server --port "$p" --bind 127.0.0.1 --dir "$dir" --cluster-enabled yes \
            --cluster-config-file nodes.conf --appendonly yes --save '' --daemonize no \
            --logfile "$dir/log" >/dev/null 2>&1 &
        pids+=($!)
        ports+=("$p")
    done
    for p in "${ports[@]}"; do
        for _ in $(seq 100); do [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
        [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ] || { for l in "$work"/*/log; do tail -n 5 "$l"; done; exit 1; }
    done
    redis-cli --cluster create "127.0.0.1:${ports[0]}" "127.0.0.1:${ports[1]}" "127.0.0.1:${ports[2]}" \
        --cluster-yes >/dev/null
    for _ in $(seq 200); do
        [[ "$(redis-cli -p "${ports[0]}" cluster info)" == *cluster_state:ok* ]] && break
        sleep 0.1
    done
    PORTS=("${ports[@]}")
}

keys() { # keys PORT... : the sum of DBSIZE
    local n=0
    for p in "$@"; do n=$((n + $(redis-cli -p "$p" dbsize))); done
    echo "$n"
}

for n in "${sizes[@]}"; do
    rm -rf "$work"/*
    pids_before=${#pids[@]}
    start_cluster src
    src=("${PORTS[@]}")
    agents=()
    for i in 0 1 2; do
        "$bin" --repo "file://$work/repo" --cluster prod --state-dir "$work/state-$i" \
            --source "$work/src-$i" --server "redis://127.0.0.1:${src[$i]}" run \
            >"$work/agent-$i.log" 2>&1 &
        agents+=($!)
        pids+=($!)
    done
    redis-benchmark -p "${src[0]}" --cluster -t set -n "$n" -r "$n" -d 16 -P 32 -q >/dev/null
    source_keys=$(keys "${src[@]}")
    sleep 8 # a few ship intervals: every agent stores its node's last writes
    for a in "${agents[@]}"; do kill -TERM "$a"; done
    for a in "${agents[@]}"; do wait "$a" || true; done

    start_cluster t1
    t1=("${PORTS[@]}")
    /usr/bin/time -o "$work/time.txt" -f 'wall=%e rss_kb=%M' "$bin" --repo "file://$work/repo" \
        --state-dir "$work/state-r" --cluster prod restore --to "redis://127.0.0.1:${t1[0]}" \
        >/dev/null 2>"$work/restore.err" || { cat "$work/restore.err"; exit 1; }
    restore_out=$(cat "$work/time.txt")
    restored_keys=$(keys "${t1[@]}")

    start_cluster t2
    t2=("${PORTS[@]}")
    start=$(date +%s.%N)
    pipes=()
    for i in 0 1 2; do
        (cat "$work/src-$i"/appendonlydir/*.incr.aof | redis-cli -p "${t2[$i]}" --pipe >/dev/null) &
        pipes+=($!)
    done
    for p in "${pipes[@]}"; do wait "$p"; done
    pipe_wall=$(echo "$(date +%s.%N) - $start" | bc)
    piped_keys=$(keys "${t2[@]}")

    wall=$(sed -n 's/.*wall=\([0-9.]*\).*/\1/p' <<<"$restore_out")
    rss=$(sed -n 's/.*rss_kb=\([0-9]*\).*/\1/p' <<<"$restore_out")
    echo "n=$n source_keys=$source_keys restore: wall=${wall}s peak_rss=$((rss / 1024))MiB keys=$restored_keys | redis-cli --pipe x3: wall=${pipe_wall}s keys=$piped_keys | ratio (pipe/restore) = $(echo "scale=2; $pipe_wall / $wall" | bc)"
    for p in "${pids[@]:$pids_before}"; do kill -9 "$p" 2>/dev/null || true; done
    pids=("${pids[@]:0:$pids_before}")
done
