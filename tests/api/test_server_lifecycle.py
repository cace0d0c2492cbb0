"""Health, reflection, port ownership and graceful shutdown of the real server process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any, cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from tests.support.chat_client import ChatClient


@pytest.fixture
def own_stack() -> Iterator[Cluster]:
    """A private single-pod stack, because these tests stop its parts."""
    cluster = Cluster(pods=1, with_envoy=False).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def health(address: str, service: str) -> str:
    with grpc.insecure_channel(address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # the stubs package omits methods
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        except grpc.RpcError as exc:
            return str(exc.code().name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def wait_for(predicate: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_health_is_not_serving_while_postgres_is_down(own_stack: Cluster) -> None:
    address = own_stack.services[0].address
    assert health(address, "") == health(address, "chat.ChatService") == "SERVING"
    assert own_stack.postgres is not None
    own_stack.postgres.stop()
    wait_for(lambda: health(address, "chat.ChatService") == "NOT_SERVING")
    assert health(address, "") == "NOT_SERVING"
    assert health(address, "liveness") == "SERVING"  # no restart would fix the database
    own_stack.postgres.start()
    wait_for(lambda: health(address, "chat.ChatService") == "SERVING")


async def test_reflection_lists_the_chat_service(stack: Cluster) -> None:
    async with grpc.aio.insecure_channel(stack.gateway) as channel:
        stub: Any = reflection_pb2_grpc.ServerReflectionStub(cast(Any, channel))

        async def ask() -> Any:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        async for reply in stub.ServerReflectionInfo(ask()):
            names = {s.name for s in reply.list_services_response.service}
            break
    assert {"chat.ChatService", "grpc.health.v1.Health"} <= names


def test_a_port_already_in_use_is_an_error(stack: Cluster) -> None:
    env = {**stack.env, "GRPC_PORT": str(stack.services[0].grpc_port)}
    result = subprocess.run(
        [sys.executable, "-m", "chat_service"], env={**_base_env(), **env},
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert "bind" in result.stderr.lower() or "address" in result.stderr.lower()


def _base_env() -> dict[str, str]:
    import os

    return dict(os.environ)


async def test_sigterm_ends_streams_with_unavailable_and_finishes_in_flight(
    own_stack: Cluster,
) -> None:
    pod = own_stack.services[0]
    async with grpc.aio.insecure_channel(pod.address) as channel:
        alice = ChatClient(channel, mint(own_stack.jwt_secret, 1, name="A"), 1)
        group = await alice.create_group()
        stream = await alice.subscribe()
        sends = [asyncio.create_task(alice.send(group.id, f"m{i}")) for i in range(20)]
        await asyncio.sleep(0)
        pod.signal(signal.SIGTERM)
        error = await stream.wait_ended(timeout=15)
        assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
        assert "resume" in (error.details() or "")
        results = await asyncio.gather(*sends, return_exceptions=True)
    acknowledged = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(acknowledged) + len(refused) == 20
    assert all(r.code() == grpc.StatusCode.UNAVAILABLE for r in refused), [
        (r.code(), r.details()) for r in refused
    ]
    assert pod.proc is not None and pod.proc.wait(15) == 0
    pod.start()
    async with grpc.aio.insecure_channel(pod.address) as channel:
        alice = ChatClient(channel, mint(own_stack.jwt_secret, 1), 1)
        stored = await alice.all_history(group.id)
    assert {m.id for m in acknowledged} <= {m.id for m in stored}
