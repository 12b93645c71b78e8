#!/usr/bin/env bash
# Builds the Debian package target/debian/aofvault_<version>_amd64.deb with dpkg-deb (no
# cargo-deb needed: the layout is small and explicit here):
#   /usr/bin/aofvault                          the binary (release build unless told otherwise)
#   /lib/systemd/system/aofvault{,@}.service   both units, ExecStart pointing at /usr/bin
#   /usr/lib/sysusers.d/aofvault.conf          the system user (created by postinst)
#   /usr/share/man/man1/aofvault.1.gz          `aofvault man`
#   bash, zsh and fish completions             `aofvault completions SHELL`
#   /usr/share/doc/aofvault/examples/aofvault.toml   the example configuration
#   /usr/share/aofvault/{prometheus,grafana}/  contrib/'s alert rules and dashboard
# postinst creates the user and /etc/aofvault (0750 root:aofvault) and never enables or starts
# a unit: the agent needs a configuration first (README, "Installing").
#
# Usage: scripts/package.sh [--profile release|debug]   (default release; CI packages the
# debug binary scripts/test.sh already built, to spare a second full build).
# Prints the path of the .deb on its last line.
set -euo pipefail

cd "$(dirname "$0")/.."

profile=release
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=$2; shift 2 ;;
        *) echo "package.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$(pwd)/$target" ;; esac
if [ "$profile" = release ]; then
    cargo build --release -p aofvault
    bin=$target/release/aofvault
else
    cargo build -p aofvault
    bin=$target/debug/aofvault
fi

version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
out=$target/debian
stage=$out/aofvault_${version}_${arch}
rm -rf "$stage"
mkdir -p "$stage/DEBIAN"

put() { # put MODE SRC DEST: install one file into the staging tree
    install -D -m "$1" "$2" "$stage$3"
}

put 0755 "$bin" /usr/bin/aofvault
strip --strip-debug "$stage/usr/bin/aofvault" 2>/dev/null || true
for unit in aofvault.service aofvault@.service; do
    sed 's|/usr/local/bin/aofvault|/usr/bin/aofvault|g' "systemd/$unit" > "$out/$unit"
    put 0644 "$out/$unit" "/lib/systemd/system/$unit"
    rm -f "$out/$unit"
done
put 0644 systemd/aofvault.sysusers.conf /usr/lib/sysusers.d/aofvault.conf

mkdir -p "$stage/usr/share/man/man1"
"$bin" man | gzip -9n > "$stage/usr/share/man/man1/aofvault.1.gz"
chmod 0644 "$stage/usr/share/man/man1/aofvault.1.gz"
mkdir -p "$stage/usr/share/bash-completion/completions" "$stage/usr/share/zsh/vendor-completions" \
    "$stage/usr/share/fish/vendor_completions.d"
"$bin" completions bash > "$stage/usr/share/bash-completion/completions/aofvault"
"$bin" completions zsh > "$stage/usr/share/zsh/vendor-completions/_aofvault"
"$bin" completions fish > "$stage/usr/share/fish/vendor_completions.d/aofvault.fish"

put 0644 config/aofvault.example.toml /usr/share/doc/aofvault/examples/aofvault.toml
put 0644 README.md /usr/share/doc/aofvault/README.md
for f in contrib/prometheus/aofvault.rules.yml contrib/prometheus/aofvault.rules.test.yml \
         contrib/grafana/aofvault.json; do
    put 0644 "$f" "/usr/share/aofvault/${f#contrib/}"
done
find "$stage" -type d -exec chmod 0755 {} +

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: aofvault
Version: $version
Architecture: $arch
Maintainer: aofvault developers <aofvault@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.34), libgcc-s1
Recommends: systemd
Section: admin
Priority: optional
Homepage: https://github.com/aofvault/aofvault
Description: continuous backup agent for Redis-protocol servers
 aofvault runs beside a kevy, Redis or Valkey server, ships its append-only
 file to object storage (a directory, S3, Azure Blob, Google Cloud Storage)
 within a second, takes snapshots on a schedule, and restores any moment to
 a data directory or a live server.
CONTROL

cat > "$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers /usr/lib/sysusers.d/aofvault.conf
    elif ! getent passwd aofvault >/dev/null; then
        adduser --system --group --home /var/lib/aofvault --no-create-home \
            --shell /usr/sbin/nologin aofvault
    fi
    if [ ! -d /etc/aofvault ]; then
        install -d -m 0750 -o root -g aofvault /etc/aofvault
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
    fi
fi
exit 0
POSTINST

cat > "$stage/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop aofvault.service 'aofvault@*.service' || true
fi
exit 0
PRERM

cat > "$stage/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
exit 0
POSTRM
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

deb=$out/aofvault_${version}_${arch}.deb
compress=xz; [ "$profile" = release ] || compress=gzip  # xz of a debug binary takes a minute
dpkg-deb --root-owner-group -Z"$compress" --build "$stage" "$deb" >/dev/null
rm -rf "$stage"
echo "package.sh: built $(du -h "$deb" | cut -f1) package"
echo "$deb"
