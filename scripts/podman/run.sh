#!/usr/bin/env bash
# `make image-test`: build the chat image for real with podman (on a debootstrap base, cached)
# and run the Helm chart's workloads from it with `podman kube play` (image_test.py).
# Prints a PASS/FAIL summary; the whole output is also written to scripts/podman/last-run.txt.
# Needs root (podman, debootstrap); installs podman, runc and debootstrap with apt when missing.
set -uo pipefail
# shellcheck source=scripts/podman/env.sh
. "$(dirname "$0")/env.sh"
ROOT="$(cd "$PODMAN_DIR/../.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
OUT="$PODMAN_DIR/last-run.txt"

results=()
failed=0

# step NAME COMMAND...: runs COMMAND with its output in a log, shown only when it fails.
step() {
    local name="$1"; shift
    local log started status
    log="$(mktemp)"
    started=$SECONDS
    "$@" >"$log" 2>&1
    status=$?
    local took=$((SECONDS - started))
    if [ "$status" -eq 0 ]; then
        echo "PASS  $name (${took}s)"
        results+=("PASS  $name (${took}s)")
    else
        echo "FAIL  $name (${took}s), last lines of its output:"
        tail -n 60 "$log" | sed 's/^/      /'
        results+=("FAIL  $name (${took}s)")
        failed=1
    fi
    rm -f "$log"
    return "$status"
}

# shellcheck disable=SC2329  # called through step
install_tools() {
    local need=()
    for tool in podman runc debootstrap; do
        command -v "$tool" >/dev/null || need+=("$tool")
    done
    [ "${#need[@]}" -eq 0 ] && return 0
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
}

main() {
    local started=$SECONDS
    echo "make image-test  $(date -u +%Y-%m-%dT%H:%M:%SZ)  ($(uname -sr), $(nproc) cores)"
    if [ "$(id -u)" -ne 0 ]; then
        echo "FAIL  needs root (rootful podman, debootstrap)"
        return 1
    fi
    step "podman, runc, debootstrap installed" install_tools || return 1
    echo "      $(podman --version), runc $(runc --version | awk 'NR==1{print $3}'), CONTAINERS_CONF=$CONTAINERS_CONF"
    local cached="built now"
    podman image exists "$BASE_IMAGE" && cached="cached"
    step "base image $BASE_IMAGE (debootstrap bookworm, $cached)" \
        bash "$PODMAN_DIR/build-base.sh" || return 1
    step "podman build $CHAT_IMAGE and $ENVOY_IMAGE" bash "$PODMAN_DIR/build-images.sh" || return 1
    podman images --format '      {{.Repository}}:{{.Tag}}  {{.ID}}  {{.Size}}' \
        --filter "reference=$BASE_IMAGE" --filter "reference=$CHAT_IMAGE" \
        --filter "reference=$ENVOY_IMAGE"
    echo "== podman kube play of the chart's workloads"
    "$PY" "$PODMAN_DIR/image_test.py"
    local status=$?
    if [ "$status" -eq 0 ]; then
        results+=("PASS  podman kube play checks (image_test.py)")
    else
        results+=("FAIL  podman kube play checks (image_test.py)")
        failed=1
    fi
    echo
    echo "== summary"
    printf '%s\n' "${results[@]}"
    if [ "$failed" -eq 0 ]; then
        echo "IMAGE-TEST: PASS in $((SECONDS - started))s"
    else
        echo "IMAGE-TEST: FAIL in $((SECONDS - started))s"
    fi
    return "$failed"
}

cd "$ROOT" || exit 1
main 2>&1 | tee "$OUT"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ] && ! grep -q '^IMAGE-TEST:' "$OUT"; then
    echo "IMAGE-TEST: FAIL" | tee -a "$OUT"
fi
exit "$status"
