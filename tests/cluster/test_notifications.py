"""The Laravel app is told about each message once, by one pod, even when a pod dies."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.notifications.webhook import sign
from tests.support.chat_client import ChatClient

SECRET = "webhook-shared-secret"


class Receiver:
    """A stand-in for the Laravel app's webhook endpoint (a real HTTP server)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.failing = False
        self.bad_signatures = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers["X-Chat-Signature"] != sign(SECRET, body):
                    receiver.bad_signatures += 1
                if receiver.failing:
                    self.send_response(503)
                else:
                    payload = json.loads(body)
                    payload["idempotency_key"] = self.headers["Idempotency-Key"]
                    receiver.calls.append(payload)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/chat/webhook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def message_ids(self) -> Counter[int]:
        return Counter(c["message"]["id"] for c in self.calls)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def cluster(receiver: Receiver) -> Iterator[Cluster]:
    c = Cluster(pods=3, with_envoy=True, extra_env={
        "NOTIFY_WEBHOOK_URL": receiver.url,
        "NOTIFY_WEBHOOK_SECRET": SECRET,
        "NOTIFY_CLAIM_IDLE_MS": "1500",
    }).start()
    try:
        yield c
    finally:
        c.stop()


async def eventually(predicate: Any, timeout: float = 20) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def test_each_message_is_notified_once_with_recipients_and_signature(
    cluster: Cluster, receiver: Receiver
) -> None:
    async with grpc.aio.insecure_channel(cluster.gateway) as channel:
        alice = ChatClient(channel, mint(cluster.jwt_secret, 801, name="Alice"), 801)
        group = await alice.create_group(members=[802, 803])
        sent = [await alice.send(group.id, f"hello {i}") for i in range(30)]
    await eventually(lambda: len(receiver.message_ids()) >= 30)
    await asyncio.sleep(1)  # duplicates, if any, would arrive by now
    counts = receiver.message_ids()
    assert set(counts) == {m.id for m in sent}
    assert set(counts.values()) == {1}
    assert receiver.bad_signatures == 0
    call = receiver.calls[0]
    assert call["type"] == "message.created"
    assert sorted(call["recipient_ids"]) == [802, 803]
    assert sorted(call["offline_recipient_ids"]) == [802, 803]  # nobody is connected
    assert call["idempotency_key"] == f"chat-message-{call['message']['id']}"


async def test_events_left_pending_by_a_killed_pod_are_claimed_by_another(
    cluster: Cluster, receiver: Receiver
) -> None:
    receiver.failing = True  # the app is down: every pod keeps its entries pending
    async with grpc.aio.insecure_channel(cluster.gateway) as channel:
        alice = ChatClient(channel, mint(cluster.jwt_secret, 811), 811)
        group = await alice.create_group(members=[812])
        sent = [await alice.send(group.id, f"m{i}") for i in range(20)]
    await asyncio.sleep(1)
    for pod in cluster.services[:2]:
        pod.kill()  # whatever they had pending is now orphaned
    receiver.failing = False
    await eventually(lambda: set(receiver.message_ids()) >= {m.id for m in sent}, timeout=30)
    assert receiver.bad_signatures == 0
