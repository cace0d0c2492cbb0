#!/bin/sh
# Generate the TypeScript protobuf code (protobuf-es v2: messages + service descriptors that
# @connectrpc/connect uses) from ../../proto/chat.proto into the directory given as $1
# (default src/gen); not chat_backend.proto, which browsers never call. The generated file is
# committed; tests/clients/test_web_codegen.py
# fails when it is stale.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-src/gen}
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then python="$repo/.venv/bin/python"; else python=python3; fi
fi
mkdir -p "$out"
cd "$here"
exec "$python" -m grpc_tools.protoc \
  --plugin=protoc-gen-es="$here/node_modules/.bin/protoc-gen-es" \
  --es_out="$out" --es_opt=target=ts \
  -I "$repo/proto" "$repo/proto/chat.proto"
