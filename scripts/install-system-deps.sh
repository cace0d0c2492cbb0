#!/usr/bin/env bash
# Installs the system packages that are missing, from apt. Idempotent; does nothing when all are
# present.
#   scripts/install-system-deps.sh service   what `make dev`, `make cluster` and `make bench`
#                                            need: the PostgreSQL and Redis servers
#   scripts/install-system-deps.sh [test]    the above plus what the test suite needs:
#                                            Prometheus (promtool checks the alert rules),
#                                            openssl and curl (TLS and compression tests)
# (Node, Chromium, fonts, PHP and protoc: clients/web/scripts/ensure-deps.sh, run by `make test`.)
# DRY_RUN=1 prints the packages it would install and installs nothing.
set -euo pipefail
what=${1:-test}
case "$what" in
  service|test) ;;
  *) echo "usage: $0 [service|test]" >&2; exit 2 ;;
esac
need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
if [ "$what" = test ]; then
  command -v promtool >/dev/null || need+=(prometheus)
  command -v openssl >/dev/null || need+=(openssl)
  command -v curl >/dev/null || need+=(curl)
fi
if [ "${#need[@]}" -eq 0 ]; then exit 0; fi
if [ -n "${DRY_RUN:-}" ]; then echo "would install: ${need[*]}"; exit 0; fi
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
