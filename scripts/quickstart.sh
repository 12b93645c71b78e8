#!/usr/bin/env bash
# The "main job" in one command: a kevy with 4 shards and a little data, backed up
# continuously by `aofvault run` into the default repository (a local directory under the
# state dir). Everything lives in ./.quickstart (kevy data, logs, agent state); no root needed.
# Ctrl-C stops the agent and kevy. Extra arguments go to `aofvault run`.
#   scripts/quickstart.sh                 # start (installs kevy and redis-cli if missing)
#   QUICKSTART_PORT=7000 scripts/quickstart.sh
set -euo pipefail

cd "$(dirname "$0")/.."
HERE=$(pwd)
QS=$HERE/.quickstart
KEVY_DIR=$QS/kevy
STATE_DIR=$QS/state
mkdir -p "$KEVY_DIR" "$STATE_DIR"

say() { echo "quickstart: $*"; }

KEVY=${KEVY_BIN:-${CARGO_HOME:-$HOME/.cargo}/bin/kevy}
if [ ! -x "$KEVY" ] || ! command -v redis-cli >/dev/null 2>&1; then
    say "kevy or redis-cli missing: running scripts/install-deps.sh"
    scripts/install-deps.sh
fi

if [ -n "${AOFVAULT_BIN:-}" ]; then
    BIN=$AOFVAULT_BIN
else
    say "building aofvault (cargo build -p aofvault)"
    cargo build -q -p aofvault
    BIN=${CARGO_TARGET_DIR:-$HERE/target}/debug/aofvault
fi

# A free port: nothing answers on it. (bash's /dev/tcp fails fast on a refused connection.)
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=${QUICKSTART_PORT:-}
if [ -z "$PORT" ]; then
    for candidate in $(seq 16400 16500); do
        if port_is_free "$candidate"; then PORT=$candidate; break; fi
    done
fi
[ -n "$PORT" ] || { say "no free port in 16400-16500"; exit 1; }

KEVY_PID=
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$KEVY_PID" ] && kill -0 "$KEVY_PID" 2>/dev/null; then
        say "stopping kevy (pid $KEVY_PID)"
        kill "$KEVY_PID" 2>/dev/null || true
        wait "$KEVY_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting kevy (4 shards) on 127.0.0.1:$PORT, data in $KEVY_DIR, log in $QS/kevy.log"
# Run from .quickstart so no kevy.toml from the current directory is picked up.
(cd "$QS" && exec "$KEVY" --bind 127.0.0.1 --port "$PORT" --dir "$KEVY_DIR" --threads 4) \
    >>"$QS/kevy.log" 2>&1 &
KEVY_PID=$!

for _ in $(seq 1 100); do
    if [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = PONG ]; then break; fi
    kill -0 "$KEVY_PID" 2>/dev/null || { say "kevy exited; log:"; tail -20 "$QS/kevy.log"; exit 1; }
    sleep 0.1
done
[ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = PONG ] || { say "kevy does not answer"; exit 1; }

say "writing a little data"
{
    echo "SET greeting hello"
    echo "INCR visits"
    echo "RPUSH queue job-1 job-2 job-3"
    echo "SADD tags kevy redis valkey"
    echo "HSET user:1 name ada lang rust"
    echo "ZADD scores 10 ada 7 bob"
    echo "SET session:1 token EX 3600"
    for i in $(seq 1 100); do echo "SET item:$i value-$i"; done
} | redis-cli -p "$PORT" >/dev/null
say "kevy has $(redis-cli -p "$PORT" dbsize) keys; try: redis-cli -p $PORT set k v"

say "running: $BIN run --source $KEVY_DIR --server redis://127.0.0.1:$PORT --state-dir $STATE_DIR $*"
say "(Ctrl-C stops the agent and kevy)"
status=0
"$BIN" run --source "$KEVY_DIR" --server "redis://127.0.0.1:$PORT" --state-dir "$STATE_DIR" "$@" || status=$?
say "aofvault exited with status $status"
exit "$status"
