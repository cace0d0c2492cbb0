"""Tells the Laravel app about new messages (for push notifications, e-mail digests...) and
about group updates, deletions and moderation actions (notifications/admin_events.py).

Work that exactly one pod must do, at least once: every pod joins the Redis consumer group
`notifier` on every group shard and on the broadcast stream (group-0 events such as
backend-wide bans) and reads with XREADGROUP, so each event goes to one pod (one XREADGROUP
per lane: with Redis Cluster each lane's shards share a slot, see fanout/stream_keys.py).
Unlike the live fan-out this reads every shard: the app wants every message once, whichever
pod serves its members.
An event is XACKed only after the app answered 2xx; entries left pending by a pod that died or
by a failed call are taken over with XAUTOCLAIM once idle for `claim_idle_ms`. Deliveries can
repeat after a crash, so every call carries an `Idempotency-Key` (the message id), and a body
signature `X-Chat-Signature: sha256=<hmac>` made with the shared secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import RedisError, ResponseError

from chat_service.fanout.redis_connect import RedisClient
from chat_service.gen import chat_pb2 as pb
from chat_service.notifications.admin_events import describe
from chat_service.telemetry import metrics
from chat_service.wire.redis_entry import decode_text, payload_of

log = logging.getLogger(__name__)

MembersOf = Callable[[int], Awaitable[list[int]]]
OnlineOf = Callable[[Sequence[int]], Awaitable[set[int]]]

GROUP = "notifier"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    def __init__(
        self,
        client: RedisClient,
        *,
        stream_lanes: Sequence[Sequence[str]],
        consumer: str,
        url: str,
        secret: str,
        members_of: MembersOf,
        online_of: OnlineOf,
        claim_idle_ms: int = 30_000,
        timeout: float = 5.0,
    ) -> None:
        self._redis = client
        self._lanes = [list(lane) for lane in stream_lanes if lane]
        self._keys = [key for lane in self._lanes for key in lane]
        self._consumer = consumer
        self._url = url
        self._secret = secret
        self._members_of = members_of
        self._online_of = online_of
        self._claim_idle_ms = claim_idle_ms
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-notifier")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _ensure_groups(self) -> None:
        for key in self._keys:
            try:
                await self._redis.xgroup_create(key, GROUP, id="$", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _run(self) -> None:
        ready = False
        cycle = 0
        while True:
            try:
                if not ready:
                    await self._ensure_groups()
                    ready = True
                if cycle % 10 == 0:
                    await self.claim_abandoned()
                cycle += 1
                block = max(1, 1000 // len(self._lanes))
                for lane in self._lanes:
                    replies: Any = await self._redis.xreadgroup(
                        GROUP, self._consumer, dict.fromkeys(lane, ">"), count=100, block=block
                    )
                    for key, entries in replies or ():
                        await self._handle(decode_text(key), entries)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                metrics.REDIS_ERRORS.labels("notifier").inc()
                ready = False  # Redis may have restarted empty: recreate the group
                await asyncio.sleep(1.0)

    async def claim_abandoned(self) -> int:
        """Take over entries another consumer (or a failed attempt) left pending."""
        claimed = 0
        for key in self._keys:
            reply = await self._redis.xautoclaim(
                key, GROUP, self._consumer, self._claim_idle_ms, "0-0", count=100
            )
            entries = reply[1] if len(reply) > 1 else []
            entries = [e for e in entries if e and e[1]]  # deleted entries come back empty
            claimed += len(entries)
            await self._handle(key, entries)
        return claimed

    async def _handle(self, key: str, entries: Any) -> None:
        for entry_id, fields in entries:
            payload = payload_of(fields)
            done = True
            if payload is not None:
                done = await self._notify(payload, decode_text(entry_id))
            if done:
                await self._redis.xack(key, GROUP, entry_id)

    async def _notify(self, payload: bytes, entry_id: str = "") -> bool:
        event = pb.ChatEvent.FromString(payload)
        admin = describe(event)
        if admin is not None:
            return await self._send(json.dumps(admin).encode(), f"chat-event-{entry_id}")
        if event.WhichOneof("event") != "message" or event.message.type == pb.SYSTEM:
            return True  # nothing to tell the app
        m = event.message
        members = await self._members_of(m.group_id)
        recipients = [u for u in members if u != m.user_id]
        online = await self._online_of(recipients)
        body = json.dumps(
            {
                "type": "message.created",
                "message": {
                    "id": m.id,
                    "group_id": m.group_id,
                    "seq": m.seq,
                    "user_id": m.user_id,
                    "user_name": m.user_name,
                    "type": pb.MessageType.Name(m.type),
                    "content": m.content,
                    "timestamp_ms": m.timestamp_ms,
                },
                "recipient_ids": recipients,
                "offline_recipient_ids": [u for u in recipients if u not in online],
            }
        ).encode()
        return await self._send(body, f"chat-message-{m.id}")

    async def _send(self, body: bytes, idempotency_key: str) -> bool:
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            "X-Chat-Signature": sign(self._secret, body),
            "User-Agent": "chat-service-notifier",
        }
        ok = await asyncio.to_thread(self._post, body, headers)
        metrics.WEBHOOK_CALLS.labels("ok" if ok else "failed").inc()
        return ok

    def _post(self, body: bytes, headers: dict[str, str]) -> bool:
        request = urllib.request.Request(self._url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as reply:
                return bool(200 <= reply.status < 300)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            log.warning("webhook call failed (%s); it will be retried", exc)
            return False
