"""Shared helpers for the client tests (web, PHP, CLI): dependency setup, seeding, images."""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from pathlib import Path

import grpc
import pytest

from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc

REPO_ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = REPO_ROOT / "clients" / "web"
PHP_DIR = REPO_ROOT / "clients" / "php"
ENSURE_DEPS = WEB_DIR / "scripts" / "ensure-deps.sh"


def ensure_deps(what: str) -> None:
    """Run clients/web/scripts/ensure-deps.sh; a failure fails the test (never a skip)."""
    proc = subprocess.run(
        ["bash", str(ENSURE_DEPS)],
        env={**os.environ, "ENSURE_DEPS": what},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"ensure-deps.sh ({what}) failed with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}",
            pytrace=False,
        )


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} failed with {proc.returncode}:\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-4000:]}",
            pytrace=False,
        )
    return proc.stdout


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def stub(address: str) -> tuple[grpc.Channel, pb_grpc.ChatServiceStub]:
    channel = grpc.insecure_channel(address)
    return channel, pb_grpc.ChatServiceStub(channel)


def history(address: str, token: str, group_id: int) -> list[pb.MessageResponse]:
    """Every message of a group, oldest first."""
    channel, chat = stub(address)
    with channel:
        out: list[pb.MessageResponse] = []
        before = 0
        while True:
            page = chat.GetMessageHistory(
                pb.GetHistoryRequest(group_id=group_id, limit=200, before_id=before),
                metadata=bearer(token),
                timeout=10,
            )
            out = list(page.messages) + out
            if not page.has_more or not page.messages:
                return out
            before = page.messages[0].id


def png(width: int = 96, height: int = 64) -> bytes:
    """A small RGB gradient PNG (no imaging library needed)."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 160)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
