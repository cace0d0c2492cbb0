# Sourced by the podman scripts: the containers.conf next to this file and the image names.
# shellcheck shell=bash
PODMAN_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="$PODMAN_DIR/containers.conf"
export BASE_IMAGE="${BASE_IMAGE:-localhost/chat-base}"
export CHAT_IMAGE="${CHAT_IMAGE:-localhost/chat-service:dev}"
export ENVOY_IMAGE="${ENVOY_IMAGE:-localhost/chat-envoy:dev}"
