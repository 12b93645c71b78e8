#!/usr/bin/env bash
# Installs the Debian package (scripts/package.sh) on this machine with `dpkg -i` and checks
# what an operator relies on: `aofvault --version`, `systemd-analyze verify` of both installed
# units, their `systemd-analyze security` exposure (at most 2.5), `man -w aofvault`, the
# completions and the user, and that the installed binary backs up a redis-server and restores
# it into a data directory that a fresh redis-server loads with the same keys.
# CI runs it after the tests (.ci/run); needs root, redis-server and redis-cli.
# Usage: scripts/package-check.sh [DEB]   (default: build one with --profile debug)
set -euo pipefail

cd "$(dirname "$0")/.."
say() { echo "package-check: $*"; }
fail() { echo "package-check: FAILED: $*" >&2; exit 1; }

deb=${1:-}
if [ -z "$deb" ]; then
    deb=$(scripts/package.sh --profile debug | tail -n1)
fi
[ -f "$deb" ] || fail "no package at $deb"

say "dpkg -i $(basename "$deb")"
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb"

[ "$(command -v aofvault)" = /usr/bin/aofvault ] || fail "aofvault is not /usr/bin/aofvault: $(command -v aofvault)"
version=$(/usr/bin/aofvault --version)
say "installed: $version"
dpkg-deb -f "$deb" Version | grep -qx "${version#aofvault }" || fail "package version differs from '$version'"

for unit in aofvault.service aofvault@.service; do
    out=$(systemd-analyze verify "/lib/systemd/system/$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
    # Warnings about other units (the system's own) are not ours; ours must be silent.
    if echo "$out" | grep -q "aofvault"; then fail "systemd-analyze verify $unit: $out"; fi
    exposure=$(systemd-analyze security --offline=true "/lib/systemd/system/$unit" 2>/dev/null \
        | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
    [ -n "$exposure" ] || fail "systemd-analyze security printed no exposure for $unit"
    awk -v e="$exposure" 'BEGIN { exit !(e <= 2.5) }' || fail "$unit exposure $exposure > 2.5"
    say "$unit: verify clean, security exposure $exposure"
done

man_page=$(man -w aofvault) || fail "man -w aofvault found nothing"
say "man page: $man_page"
for f in /usr/share/bash-completion/completions/aofvault /usr/share/zsh/vendor-completions/_aofvault \
         /usr/share/fish/vendor_completions.d/aofvault.fish /usr/lib/sysusers.d/aofvault.conf \
         /usr/share/doc/aofvault/examples/aofvault.toml /usr/share/aofvault/prometheus/aofvault.rules.yml; do
    [ -s "$f" ] || fail "missing $f"
done
getent passwd aofvault >/dev/null || fail "postinst did not create the aofvault user"
[ -d /etc/aofvault ] || fail "postinst did not create /etc/aofvault"
/usr/bin/aofvault --config /usr/share/doc/aofvault/examples/aofvault.toml --source /tmp config check >/dev/null \
    || fail "the example configuration does not validate"

# --- back up and restore a redis-server with the installed binary --------------------------
work=$(mktemp -d /tmp/aofvault-package-check.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$work"
    # Leave the machine as it was: an installed package's /etc/aofvault (root:aofvault 0750)
    # would change what a later test run, as another user, finds at the default config path.
    dpkg --purge aofvault >/dev/null 2>&1 || true
    rmdir /etc/aofvault 2>/dev/null || true
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_redis() { # start_redis DIR PORT
    redis-server --port "$2" --bind 127.0.0.1 --dir "$1" --appendonly yes --save '' \
        --daemonize no --logfile "$1/redis.log" &
    pids+=($!)
    for _ in $(seq 100); do
        redis-cli -p "$2" ping 2>/dev/null | grep -q PONG && return 0
        sleep 0.1
    done
    fail "redis-server on $2 did not start: $(tail -5 "$1/redis.log")"
}
mkdir -p "$work/src" "$work/restored"
port=$(free_port)
start_redis "$work/src" "$port"
for i in $(seq 1 200); do echo "SET key:$i value-$i"; done | redis-cli -p "$port" >/dev/null
redis-cli -p "$port" RPUSH list a b c >/dev/null
redis-cli -p "$port" HSET hash f1 v1 f2 v2 >/dev/null
sleep 1.5   # appendfsync everysec: the AOF holds every write within a second
common=(--repo "file://$work/repo" --instance pkg --state-dir "$work/state")
/usr/bin/aofvault "${common[@]}" --source "$work/src" --server "redis://127.0.0.1:$port" backup \
    || fail "the installed aofvault could not back up the redis-server"
/usr/bin/aofvault "${common[@]}" restore --to-dir "$work/restored" \
    || fail "the installed aofvault could not restore"
port2=$(free_port)
start_redis "$work/restored" "$port2"
dump() { redis-cli -p "$1" --scan | sort | while read -r k; do
    printf '%s %s\n' "$k" "$(redis-cli -p "$1" DUMP "$k" | od -An -tx1 | tr -d ' \n')"; done; }
dump "$port" > "$work/a"
dump "$port2" > "$work/b"
[ "$(wc -l < "$work/a")" -eq 202 ] || fail "the source holds $(wc -l < "$work/a") keys, not 202"
cmp -s "$work/a" "$work/b" || fail "the restored server differs: $(diff "$work/a" "$work/b" | head -5)"
say "backup and restore with the installed binary: 202 keys equal"
say "ok"
