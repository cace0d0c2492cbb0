#!/bin/sh
# Regenerate the PHP message classes in generated/ from every ../../proto/*.proto (chat.proto
# and chat_backend.proto, the app backend's API).
# Uses protoc's built-in PHP generator (Debian `protobuf-compiler`, the same protobuf release
# as the `php-google-protobuf` runtime; grpcio-tools' protoc has no PHP generator). Only
# messages are generated: calls go through app/Services/Chat/GrpcWebTransport.php, or through
# the grpc PECL extension's generated client (see README.md).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$here/generated}
rm -rf "$out/Chat" "$out/GPBMetadata"
mkdir -p "$out"
exec protoc --php_out="$out" -I "$repo/proto" "$repo"/proto/*.proto
