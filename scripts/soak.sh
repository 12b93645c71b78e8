#!/usr/bin/env bash
# The long versions of the crash and fault tests: `scripts/soak.sh [minutes]` (default 10).
#
# Round after round until the time is up, each with a new seed, it runs
#   - tests/tests/crash.rs        with AOFVAULT_CRASH_KILLS kill -9s of the agent per server
#                                 (default 30) and AOFVAULT_RESTORE_KILLS killed restores (10);
#   - tests/tests/faults.rs       with AOFVAULT_FAULT_CYCLES cycles of resets, 503 bursts,
#                                 stalls, slowness and an outage (default 4);
#   - tests/tests/local_faults.rs once per round (corrupt frame, server kill -9, full or
#                                 read-only state dir, unreadable AOF dir);
#   - agent/tests/sim.rs          the follower simulation (release build): as many seeds as
#                                 fit in AOFVAULT_SIM_ROUND_SECONDS (default 60), new ones
#                                 each round; a failing seed replays with AOFVAULT_SIM_SEED;
#   - tests/tests/server_crash.rs the server round: kevy (4 shards) and redis-server killed -9
#                                 under load AOFVAULT_SERVER_KILLS times each (default 10),
#                                 nobody sending BGREWRITEAOF; prints the time until every shard
#                                 follows again after each restart.
# Each test prints one `SOAK-SUMMARY` line; at the end the script prints them all, adds up the
# kills and fault cycles, and exits non-zero if any test failed (its whole output is kept in
# the work directory it names).
#
# The binaries are built once and copied, so edits and builds in the tree meanwhile do not
# change what is being soaked. Set AOFVAULT_SOAK_DIR to keep the work directory somewhere.
set -uo pipefail

cd "$(dirname "$0")/.."
minutes=${1:-10}
kills=${AOFVAULT_CRASH_KILLS:-30}
restore_kills=${AOFVAULT_RESTORE_KILLS:-10}
cycles=${AOFVAULT_FAULT_CYCLES:-4}
sim_seconds=${AOFVAULT_SIM_ROUND_SECONDS:-60}
work=${AOFVAULT_SOAK_DIR:-$(mktemp -d /tmp/aofvault-soak-XXXXXX)}
mkdir -p "$work/bin" "$work/logs"

echo "soak: ${minutes} min; crash kills/round=${kills}, restore kills=${restore_kills}, fault cycles=${cycles}; work dir ${work}"
cargo build -p aofvault || exit 1
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$(pwd)/$target" ;; esac
cp "$target/debug/aofvault" "$work/bin/aofvault"
export AOFVAULT_BIN="$work/bin/aofvault"

for t in crash faults local_faults; do
    exe=$(cargo test -p aofvault-tests --test "$t" --no-run --message-format=json 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
    [ -x "$exe" ] || { echo "soak: cannot build the $t test binary" >&2; exit 1; }
    cp "$exe" "$work/bin/$t"
done
exe=$(cargo test -p aofvault --release --test sim --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$exe" ] || { echo "soak: cannot build the sim test binary" >&2; exit 1; }
cp "$exe" "$work/bin/sim"

# The server-kill round's binary (kept apart from the list above).
server_kills=${AOFVAULT_SERVER_KILLS:-10}
exe=$(cargo test -p aofvault-tests --test server_crash --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$exe" ] || { echo "soak: cannot build the server_crash test binary" >&2; exit 1; }
cp "$exe" "$work/bin/server_crash"

summary="$work/summary.txt"
: > "$summary"
passed=0
failed=0
rounds=0
deadline=$(( $(date +%s) + minutes * 60 ))
seed=${AOFVAULT_SEED:-$(date +%s)}

# run NAME ENV... -- ARGS...: one test binary run, counted and summarised.
run() {
    local name=$1; shift
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    local log="$work/logs/round${rounds}-${name}.log"
    local start=$(date +%s)
    if env "${envs[@]}" "$work/bin/$name" --test-threads=1 --nocapture "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "soak: round ${rounds} ${name} ok ($(( $(date +%s) - start )) s)"
    else
        failed=$((failed + 1))
        echo "soak: round ${rounds} ${name} FAILED ($(( $(date +%s) - start )) s): see ${log}"
        echo "FAILED round=${rounds} ${name} seed=${AOFVAULT_SEED} log=${log}" >>"$summary"
    fi
    grep -ho 'SOAK-SUMMARY.*' "$log" >>"$summary" || true
}

# The server-kill round: kevy and redis-server killed -9 under load, more times than CI does.
server_kill_round() {
    run server_crash AOFVAULT_SERVER_KILLS="$server_kills" -- killed_under_load
    grep -h 'following again after\|torn ranges' "$work/logs/round${rounds}-server_crash.log" || true
}

while [ "$(date +%s)" -lt "$deadline" ]; do
    rounds=$((rounds + 1))
    seed=$((seed + 1))
    export AOFVAULT_SEED=$seed
    run crash AOFVAULT_CRASH_KILLS="$kills" AOFVAULT_RESTORE_KILLS="$restore_kills" --
    [ "$(date +%s)" -lt "$deadline" ] || break
    run faults AOFVAULT_FAULT_CYCLES="$cycles" --
    [ "$(date +%s)" -lt "$deadline" ] || break
    run local_faults --
    [ "$(date +%s)" -lt "$deadline" ] || break
    # Each round starts at (its seed mod 10⁵)·10⁶: rounds do not repeat a seed.
    run sim AOFVAULT_SIM_SECONDS="$sim_seconds" AOFVAULT_SIM_FIRST=$(( (seed % 100000) * 1000000 )) --
    [ "$(date +%s)" -lt "$deadline" ] || break
    server_kill_round
done

echo
echo "=== soak summary: ${rounds} round(s) in ${minutes} min, ${passed} test run(s) passed, ${failed} failed ==="
cat "$summary"
sum() { grep -o "$1=[0-9]*" "$summary" | cut -d= -f2 | awk '{s+=$1} END {print s+0}'; }
echo "agent kill -9s: $(sum ' kills') ; killed restores (to-dir mid-run): $(sum killed_mid) ; killed live restores: $(sum live_killed)"
echo "fault cycles: $(sum cycles) ; outages reported in status: $(sum outages_reported) ; proxy resets: $(sum proxy_resets) ; proxy 503s: $(sum proxy_503s)"
echo "acknowledged writes under faults and kills: $(sum writes)"
echo "simulated seeds (follower simulation): $(sum sim_seeds)"
echo "server kill -9s: $(sum server_kills) ; torn ranges: $(sum torn_ranges) ; recovery times (s): $(grep -o 'recovery_s=\[[^]]*\]' "$summary" | cut -d= -f2 | tr '\n' ' ')"
echo "work dir: ${work}"
[ "$failed" -eq 0 ]
