"""The commands the README promises: `make dev` and `make cluster` (their Python entry points)
start, serve a real round trip, and stop cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from chat_devstack.ports import free_port
from chat_devstack.processes import wait_serving
from chat_devstack.tokens import DEV_JWT_SECRET, mint
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent


def round_trip(address: str) -> list[str]:
    md = (("authorization", f"Bearer {mint(DEV_JWT_SECRET, 1, name='Alice')}"),)
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ChatServiceStub(channel)
        group = stub.CreateGroup(pb.CreateGroupRequest(name="readme"), metadata=md, timeout=10)
        stub.SendMessage(pb.SendMessageRequest(group_id=group.id, content="hi"), metadata=md,
                         timeout=10)
        history = stub.GetMessageHistory(pb.GetHistoryRequest(group_id=group.id), metadata=md,
                                         timeout=10)
    return [m.content for m in history.messages]


def run(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
    return subprocess.Popen([sys.executable, "-m", "chat_devstack", *args], cwd=ROOT,
                            env={**environment, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_until_serving(proc: subprocess.Popen[str], address: str, timeout: float = 90,
                       *, through_envoy: bool = False) -> None:
    """Until the address answers: health checks on a pod; a chat call through Envoy, whose
    public listener routes only chat.ChatService (no health, no reflection)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if through_envoy:
                round_trip(address)
            else:
                wait_serving(address, timeout=3)
            return
        except (TimeoutError, grpc.RpcError):
            if proc.poll() is not None:
                pytest.fail(f"exited with {proc.returncode}:\n{proc.stdout.read()[-3000:]}"
                            if proc.stdout else "exited")
            assert time.monotonic() < deadline, f"{address} did not start serving"
            time.sleep(1)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"did not stop on Ctrl-C:\n{out[-2000:]}")
    return out


def test_dev_serves_on_the_given_port_and_prints_the_secret() -> None:
    port = free_port()
    proc = run(["dev"], {"GRPC_PORT": str(port)})
    try:
        wait_until_serving(proc, f"127.0.0.1:{port}")
        assert round_trip(f"127.0.0.1:{port}")[-1] == "hi"
    finally:
        out = stop(proc)
    assert DEV_JWT_SECRET in out and "chat_devstack token" in out


def test_cluster_starts_three_pods_behind_envoy() -> None:
    envoy = free_port()
    proc = run(["cluster"], {"ENVOY_PORT": str(envoy)})
    try:
        wait_until_serving(proc, f"127.0.0.1:{envoy}", through_envoy=True)
        assert round_trip(f"127.0.0.1:{envoy}")[-1] == "hi"
    finally:
        out = stop(proc)
    assert out.count("pod-") >= 3 and "Envoy" in out
