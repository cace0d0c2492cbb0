#!/usr/bin/env bash
# Local cluster: kind + the chat chart, then `helm test`.
#   deploy/kind/up.sh            create/update everything
#   CLUSTER=chat NAMESPACE=chat IMAGE=chat-service:mytag deploy/kind/up.sh
#   JWT_SECRET=<your Laravel app's JWT_SECRET> deploy/kind/up.sh
# Without JWT_SECRET the release uses the development secret of `make dev` / `chat token`
# (jwt.secret in values-kind.yaml = chat_devstack.tokens.DEV_JWT_SECRET).
# Needs docker, kind, kubectl and helm on PATH. Tear down: kind delete cluster --name chat
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="${CLUSTER:-chat}"
NAMESPACE="${NAMESPACE:-chat}"
RELEASE="${RELEASE:-chat}"
# A fresh tag per run, so `helm upgrade` rolls the pods onto the newly built image.
IMAGE="${IMAGE:-chat-service:dev-$(date +%Y%m%d%H%M%S)}"
VALUES="$ROOT/deploy/kind/values-kind.yaml"
DEV_JWT_SECRET="dev-only-secret-change-me-0123456789abcdef"
JWT_SECRET="${JWT_SECRET:-$DEV_JWT_SECRET}"

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found on PATH" >&2; exit 1; }
done

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config "$ROOT/deploy/kind/kind-config.yaml"
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

docker build -t "$IMAGE" "$ROOT"
kind load docker-image "$IMAGE" --name "$CLUSTER"

helm upgrade --install "$RELEASE" "$ROOT/deploy/helm/chat" \
  --namespace "$NAMESPACE" --create-namespace \
  -f "$VALUES" \
  --set-string jwt.secret="$JWT_SECRET" \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
  --wait --timeout 5m

helm test "$RELEASE" --namespace "$NAMESPACE" --logs

cat <<MSG
Ready:
  gRPC-Web / gRPC via Envoy: http://localhost:8080
  Mint a token (HS256 with the release's jwt.secret) and call through Envoy:
    TOKEN=\$($ROOT/.venv/bin/chat token --secret $(printf %q "$JWT_SECRET") --user 1 --name Alice)
    $ROOT/.venv/bin/chat --server localhost:8080 --token "\$TOKEN" groups
  Envoy admin (loopback in the pod only):
    kubectl -n $NAMESPACE port-forward deploy/$RELEASE-envoy 9901 & then http://localhost:9901/clusters
  kubectl -n $NAMESPACE get pods
MSG
