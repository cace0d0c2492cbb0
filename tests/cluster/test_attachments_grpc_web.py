"""A browser's attachments over gRPC-Web: 1 MiB unary chunks through Envoy (the cluster's
rendered config) to the stack's pod, a refusal reaching the browser as a status with its
message, and the download streamed back."""

from __future__ import annotations

import asyncio
import http.client
import struct
import subprocess
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from chat_devstack import envoy_config
from chat_devstack.cluster import Cluster, envoy_binary
from chat_devstack.ports import free_port, wait_for_port
from chat_devstack.processes import wait_serving
from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.attachments import (
    INVALID,
    KIB,
    MIB,
    assert_png_attachment,
    png,
    sha,
)

# ---- gRPC-Web: a browser's unary chunks through Envoy ----


@pytest.fixture(scope="module")
def envoy_port(stack: Cluster) -> Iterator[int]:
    """Envoy (the same rendered config as the cluster's) in front of the stack's pod."""
    port, admin = free_port(), free_port()
    config = stack.base_dir / f"envoy-attachments-{port}.json"
    config.write_text(
        envoy_config.render(
            listen_host="127.0.0.1",
            listen_port=port,
            admin_port=admin,
            probes_port=free_port(),
            public_health=True,  # wait_serving below asks Health/Check through Envoy
            upstreams=[envoy_config.Upstream("127.0.0.1", stack.services[0].grpc_port)],
        )
    )
    proc = subprocess.Popen(
        [envoy_binary(), "-c", str(config), "--disable-hot-restart", "--base-id", str(port),
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        wait_serving(f"127.0.0.1:{port}", timeout=30)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def grpc_web(
    port: int, method: str, message: bytes, token: str
) -> tuple[list[bytes], dict[str, str]]:
    """One gRPC-Web call exactly as a browser makes it: HTTP/1.1 POST, grpc-web+proto.
    Returns the messages and the status (trailer frame, or headers when trailers-only)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "POST",
            f"/chat.ChatService/{method}",
            body=b"\x00" + struct.pack(">I", len(message)) + message,
            headers={
                "content-type": "application/grpc-web+proto",
                "x-grpc-web": "1",
                "x-user-agent": "grpc-web-javascript/0.1",
                "origin": "http://localhost:5173",
                "authorization": f"Bearer {token}",
            },
        )
        response = conn.getresponse()
        assert response.status == 200, response.status
        body = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()
    messages: list[bytes] = []
    trailers = {k: v for k, v in headers.items() if k.startswith("grpc-")}
    pos = 0
    while pos + 5 <= len(body):
        (length,) = struct.unpack(">I", body[pos + 1 : pos + 5])
        frame = body[pos + 5 : pos + 5 + length]
        if body[pos] & 0x80:
            for line in frame.decode().split("\r\n"):
                key, _, value = line.partition(":")
                trailers[key.strip().lower()] = value.strip()
        else:
            messages.append(frame)
        pos += 5 + length
    return messages, trailers


async def test_browser_uploads_1mib_chunks_over_grpc_web_and_downloads(
    envoy_port: int, user: UserFactory
) -> None:
    alice = user()
    group = await alice.create_group()
    data, width, height = png(3 * MIB, seed=11)

    async def call(method: str, request: Any) -> tuple[list[bytes], dict[str, str]]:
        return await asyncio.to_thread(
            grpc_web, envoy_port, method, request.SerializeToString(), alice.token
        )

    replies, trailers = await call(
        "StartUpload",
        pb.StartUploadRequest(
            group_id=group.id, file_name="web.png", content_type="image/png",
            size=len(data), sha256=sha(data),
        ),
    )
    assert trailers["grpc-status"] == "0", trailers
    upload_id = pb.UploadStatus.FromString(replies[0]).upload_id
    for offset in range(0, len(data), MIB):  # the largest chunk allowed
        replies, trailers = await call(
            "UploadChunk",
            pb.UploadChunkRequest(upload_id=upload_id, offset=offset,
                                  data=data[offset : offset + MIB]),
        )
        assert trailers["grpc-status"] == "0", trailers
    done = pb.UploadStatus.FromString(replies[0])
    assert done.complete
    assert_png_attachment(done.attachment, data, width, height, name="web.png")

    # A refusal reaches the browser as a status with its message.
    _, trailers = await call(
        "UploadChunk", pb.UploadChunkRequest(upload_id=upload_id, offset=0, data=b"x")
    )
    assert trailers["grpc-status"] == str(INVALID.value[0])
    assert "already complete" in urllib.parse.unquote(trailers["grpc-message"])

    replies, trailers = await call("DownloadFile", pb.DownloadFileRequest(attachment_id=upload_id))
    assert trailers["grpc-status"] == "0", trailers
    chunks = [pb.DownloadChunk.FromString(r) for r in replies]
    assert chunks[0].attachment == done.attachment
    assert all(len(c.data) <= 256 * KIB for c in chunks)
    assert b"".join(c.data for c in chunks) == data
