#!/usr/bin/env bash
# Build the chat-service image from the repository's Dockerfile with docker or podman,
# whichever is installed (docker first). Used by `make image`.
#   scripts/build-image.sh                                    -> chat-service:dev
#   IMAGE=ghcr.io/you/chat-service:0.1.0 scripts/build-image.sh
#   CONTAINER_ENGINE=podman IMAGE_BUILD_ARGS="--network host" scripts/build-image.sh
# Then push it (`docker push IMAGE` / `podman push IMAGE`) and install the chart with
#   --set image.repository=ghcr.io/you/chat-service,image.tag=0.1.0
# Multi-arch images for releases are built by .github/workflows/image.yml on tags v*.
set -euo pipefail

here="${BASH_SOURCE[0]%/*}"
[ "$here" = "${BASH_SOURCE[0]}" ] && here=.
ROOT="$(cd "$here/.." && pwd)"
IMAGE="${IMAGE:-chat-service:dev}"
ENGINE="${CONTAINER_ENGINE:-}"

if [ -z "$ENGINE" ]; then
  for candidate in docker podman; do
    if command -v "$candidate" >/dev/null 2>&1; then
      ENGINE="$candidate"
      break
    fi
  done
fi
if [ -z "$ENGINE" ]; then
  {
    echo "error: building the image needs docker or podman, and neither is on PATH."
    echo "  Install one of them, e.g. Docker Engine (https://docs.docker.com/engine/install/) or"
    echo "  \`sudo apt-get install podman\`, then run \`make image\` again"
    echo "  (or choose one explicitly with CONTAINER_ENGINE=docker|podman)."
  } >&2
  exit 1
fi
if ! command -v "$ENGINE" >/dev/null 2>&1; then
  echo "error: CONTAINER_ENGINE=$ENGINE is not on PATH" >&2
  exit 1
fi

echo "building $IMAGE from $ROOT/Dockerfile with $ENGINE" >&2
# shellcheck disable=SC2086  # IMAGE_BUILD_ARGS is a list of extra arguments
"$ENGINE" build ${IMAGE_BUILD_ARGS:-} -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT"
echo "built $IMAGE; push it with: $ENGINE push $IMAGE" >&2
