#!/usr/bin/env bash
# Builds the base image localhost/chat-base (Debian bookworm + python3 + python3-venv) with
# debootstrap, because no container registry is reachable here. Cached: does nothing when the
# image already exists (REBUILD_BASE=1 forces a rebuild). Takes ~100 s the first time.
set -euo pipefail
# shellcheck source=scripts/podman/env.sh
. "$(dirname "$0")/env.sh"

if [ "${REBUILD_BASE:-0}" != 1 ] && podman image exists "$BASE_IMAGE"; then
    echo "base image $BASE_IMAGE exists (cached)"
    exit 0
fi

# The Debian mirror apt already uses (deb822 .sources or one-line .list), else deb.debian.org.
mirror="$(
    { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources || true
      grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list || true
    } | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true
)"
mirror="${mirror:-http://deb.debian.org/debian}"

root="$(mktemp -d /var/tmp/chat-base-root.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm from $mirror into $root"
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$root" "$mirror" \
    > "$root.log" 2>&1 || { tail -n 30 "$root.log"; exit 1; }
rm -f "$root.log"
# Smaller image: no apt lists or package caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | podman import \
    --change 'CMD ["/bin/bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$BASE_IMAGE"
echo "built $BASE_IMAGE"
