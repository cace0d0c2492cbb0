"""gzip: with GRPC_COMPRESSION=gzip a pod compresses its responses (grpc-core compresses
whatever the client advertises; grpc clients accept gzip by default). Off by default: meant for
native gRPC clients on slow links, not for browsers behind gRPC-Web. Sizes are read on the
wire (HTTP/2 with curl, the gRPC frame's compressed flag) against a pod without compression on
the same database; the figures go into BENCHMARKS.md."""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.support.chat_client import ChatClient


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(pods=1, with_envoy=False, extra_env={"GRPC_COMPRESSION": "gzip"}).start()
    try:
        c.extra_env["GRPC_COMPRESSION"] = "none"
        c.add_pod("plain-pod")
        yield c
    finally:
        c.stop()


def first_frame(address: str, method: str, message: bytes, token: str, accept: str,
                folder: Path) -> tuple[int, int]:
    """(compressed flag, length) of the first gRPC message frame of the response."""
    curl = shutil.which("curl")
    assert curl, "curl is required"
    body, out = folder / "request", folder / "response"
    body.write_bytes(b"\x00" + struct.pack(">I", len(message)) + message)
    subprocess.run(
        [curl, "-s", "--http2-prior-knowledge", "--max-time", "5",
         "-H", "content-type: application/grpc", "-H", "te: trailers",
         "-H", f"grpc-accept-encoding: {accept}", "-H", f"authorization: Bearer {token}",
         "--data-binary", f"@{body}", "-o", str(out),
         f"http://{address}/chat.ChatService/{method}"],
        check=False, timeout=10,
    )
    data = out.read_bytes()
    (length,) = struct.unpack(">I", data[1:5])
    return data[0], length


async def test_gzip_for_clients_that_accept_it(cluster: Cluster, tmp_path: Path) -> None:
    token = mint(cluster.jwt_secret, 5151, name="Zip")
    async with grpc.aio.insecure_channel(cluster.gateway) as channel:
        client = ChatClient(channel, token, 5151)
        group = await client.create_group()
        for i in range(60):
            await client.send(group.id, f"Message {i}: the quick brown fox jumps over the lazy "
                                        "dog, as chat messages often repeat themselves.")
        started = time.perf_counter()
        for _ in range(100):  # grpc-python accepts gzip: these pages travel compressed
            page = await client.history(group.id, limit=50)
        per_page_ms = (time.perf_counter() - started) * 10
        assert len(page.messages) == 50
    plain = cluster.services[1].address
    async with grpc.aio.insecure_channel(plain) as channel:
        client = ChatClient(channel, token, 5151)
        started = time.perf_counter()
        for _ in range(100):
            await client.history(group.id, limit=50)
        plain_page_ms = (time.perf_counter() - started) * 10
    request = pb.GetHistoryRequest(group_id=group.id, limit=50).SerializeToString()
    flag_plain, size_plain = first_frame(plain, "GetMessageHistory", request, token,
                                         "identity, gzip", tmp_path)
    flag_zip, size_zip = first_frame(cluster.gateway, "GetMessageHistory", request, token,
                                     "identity, gzip", tmp_path)
    assert flag_plain == 0 and flag_zip == 1
    assert size_zip < size_plain / 3
    sub = pb.SubscribeRequest(positions=[pb.GroupPosition(group_id=group.id, last_seq=1)])
    _, batch_plain = first_frame(plain, "Subscribe", sub.SerializeToString(), token,
                                 "gzip", tmp_path)
    flag_b, batch_zip = first_frame(cluster.gateway, "Subscribe", sub.SerializeToString(), token,
                                    "gzip", tmp_path)
    assert flag_b == 1 and batch_zip < batch_plain / 3
    print(f"\nGZIP: history page of 50: {size_plain} -> {size_zip} bytes; replay batch of 60 "
          f"events: {batch_plain} -> {batch_zip} bytes; page round trip {plain_page_ms:.2f} ms "
          f"plain vs {per_page_ms:.2f} ms gzipped (Python client, loopback)")
