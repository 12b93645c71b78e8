# Azurite (the Azure Storage emulator, npm package `azurite`): the tests of az:// repositories
# (tests/tests/azure.rs) start its blob service, `azurite-blob`. Installed globally with npm,
# pinned; node and npm come from Debian when missing. Sourced by scripts/install-deps.sh.
AZURITE_VERSION=3.37.0
azurite_have=$(azurite-blob --version 2>/dev/null || true)
if [ "$azurite_have" = "$AZURITE_VERSION" ]; then
    say "azurite $AZURITE_VERSION present ($(command -v azurite-blob))"
else
    if ! command -v npm >/dev/null 2>&1; then
        say "apt-get install nodejs npm (for azurite)"
        DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends nodejs npm \
            || { "${SUDO[@]}" apt-get update -q && DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends nodejs npm; }
    fi
    say "npm install -g azurite@$AZURITE_VERSION (about a minute)"
    "${SUDO[@]}" npm install -g --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION"
    azurite_have=$(azurite-blob --version 2>/dev/null || true)
    [ "$azurite_have" = "$AZURITE_VERSION" ] || { say "ERROR: azurite-blob --version says '$azurite_have'"; exit 1; }
fi
