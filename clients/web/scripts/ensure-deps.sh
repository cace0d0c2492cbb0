#!/usr/bin/env bash
# Installs what the client tests need when it is missing (idempotent; fast when all is there):
#   - node + npm (Debian `nodejs npm`) when absent
#   - clients/web/node_modules from package-lock.json (npm ci) when absent or older than the lock
#   - Debian `chromium` (/usr/bin/chromium) for playwright-core (Playwright's own browser
#     download cannot work offline) and `fonts-noto-color-emoji` (reactions in screenshots)
#   - Debian `php8.2-cli`, `php8.2-curl`, `php-google-protobuf` and `protobuf-compiler` (protoc
#     with its PHP generator) for the PHP client test
# Called by `make test` and by tests/clients/*. Needs root (or sudo) only when installing.
# ENSURE_DEPS=web|browser|php|all (default all) limits what is checked.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
what=${ENSURE_DEPS:-all}
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

want() { [ "$what" = all ] || [ "$what" = "$1" ]; }

if want web || want browser; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "ensure-deps: installing nodejs npm (apt)" >&2
    apt_install nodejs npm
  fi
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
    echo "ensure-deps: installing php8.2-cli php8.2-curl php-google-protobuf protobuf-compiler (apt)" >&2
    apt_install php8.2-cli php8.2-curl php-google-protobuf protobuf-compiler
  fi
fi
