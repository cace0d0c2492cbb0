"""gRPC handlers of the two event streams: Subscribe (batched, resumable) and StreamMessages
(the original plan's bidi stream). Both yield bytes already framed by the fan-out
(wire/frames.py); api/handlers.py passes them through unserialised.

A stream ends with a status the client can act on through the call gate (api/calls.py):
a subscriber that fell behind or was closed by the server gets UNAVAILABLE with a resume
hint (fanout/session.py), counted in `chat_subscribers_dropped_total{reason}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

import grpc

from chat_service.api.auth import bearer_from_metadata
from chat_service.api.calls import Callers, Ctx, Draining, streaming
from chat_service.api.servicer import post
from chat_service.domain.chat import ChatService
from chat_service.domain.errors import ChatError, InvalidArgument, PermissionDenied
from chat_service.domain.models import UserProfile
from chat_service.domain.ports import PresenceTracker
from chat_service.fanout.delivery import Delivery
from chat_service.fanout.hub import Hub
from chat_service.fanout.session import Session, SessionClosed, SessionStore
from chat_service.gen import chat_pb2 as pb
from chat_service.presence.stream_slots import LocalStreamSlots, StreamSlot, StreamSlots
from chat_service.telemetry import metrics


@dataclass(frozen=True)
class StreamSettings:
    queue_max: int
    batch_max: int
    replay_max: int
    heartbeat_seconds: float
    max_per_user: int = 20


class StreamApi:
    def __init__(
        self,
        chat: ChatService,
        callers: Callers,
        hub: Hub,
        store: SessionStore,
        streams: StreamSettings,
        presence: PresenceTracker,
        draining: Draining,
        stream_slots: StreamSlots | None = None,
    ) -> None:
        # Open streams per user: cluster-wide in Redis (app.py), else counted in this process.
        self._slots = stream_slots or LocalStreamSlots(streams.max_per_user)
        self._chat = chat
        self._caller = callers
        self._hub = hub
        self._store = store
        self._streams = streams
        self._presence = presence
        self.draining = draining

    async def _session(self, user_id: int) -> tuple[Session, StreamSlot]:
        """A session for a new stream and the slot it holds in the user's stream cap
        (ResourceExhausted when all are taken); the stream's `finally` releases the slot."""
        s = self._streams
        slot = await self._slots.acquire(user_id)
        session = Session(
            self._hub,
            self._store,
            user_id,
            queue_max=s.queue_max,
            batch_max=s.batch_max,
            replay_max=s.replay_max,
        )
        return session, slot

    @streaming(live=True)
    async def Subscribe(
        self, request: pb.SubscribeRequest, context: Ctx
    ) -> AsyncGenerator[bytes, None]:
        caller = await self._caller(context, request.jwt_token)
        positions: dict[int, int] = {}
        update_positions: dict[int, int] = {}
        for p in request.positions:
            if p.group_id <= 0 or p.last_seq < 0 or p.last_update_seq < 0:
                raise InvalidArgument("positions need a positive group_id and non-negative seqs")
            positions[p.group_id] = p.last_seq
            if p.last_seq > 0:
                update_positions[p.group_id] = p.last_update_seq
        session, slot = await self._session(caller.id)
        metrics.OPEN_STREAMS.labels("Subscribe").inc()
        online = False
        try:
            await session.start(positions, update_positions)
            # After registering, so this stream also sees the user's own "online" event.
            # Counted from the call on (before its first await), so a stream cancelled while
            # its user is being marked online still ends with `disconnected`.
            online = True
            await self._presence.connected(caller.id, session.group_ids)
            # Initial metadata tells the client it is registered: from here on nothing of its
            # groups can be missed (what the replay below does not cover arrives live).
            await context.send_initial_metadata((("chat-subscribed", "1"),))
            async for batch in session.replay():
                yield _entries(batch)
            heartbeat = self._streams.heartbeat_seconds
            while True:
                batch = await session.next_batch(heartbeat)
                if not batch:
                    batch = [Delivery.heartbeat()]
                yield _entries(batch)
        finally:
            session.close()
            await self._slots.release(slot)
            metrics.OPEN_STREAMS.labels("Subscribe").dec()
            if online:
                await self._presence.disconnected(caller.id)

    @streaming(live=True)
    async def StreamMessages(
        self, request_iterator: AsyncIterator[pb.MessageRequest], context: Ctx
    ) -> AsyncGenerator[bytes, None]:
        requests = request_iterator.__aiter__()
        first: pb.MessageRequest | None = None
        token = bearer_from_metadata(context.invocation_metadata())
        if not token:
            # Clients of the original proto authenticate with the first request's token.
            try:
                first = await requests.__anext__()
            except StopAsyncIteration:
                return
            token = first.jwt_token
        caller = await self._caller(context, token)
        session, slot = await self._session(caller.id)
        failure: list[BaseException] = []
        metrics.OPEN_STREAMS.labels("StreamMessages").inc()

        async def post_all() -> None:
            try:
                if first is not None:
                    await self._post_from_stream(caller, token, first)
                async for req in requests:
                    await self._post_from_stream(caller, token, req)
                session.sub.close("client finished sending")
            except (ChatError, grpc.aio.AbortError) as exc:
                failure.append(exc)
                session.sub.close("request refused")
            except Exception as exc:  # a broken request stream ends only this caller's stream
                failure.append(exc)
                session.sub.close("request stream failed")

        poster: asyncio.Task[None] | None = None
        online = False
        try:
            await session.start({})  # live from now, as in the original plan
            online = True  # counted before connected's first await (see Subscribe)
            await self._presence.connected(caller.id, session.group_ids)
            await context.send_initial_metadata((("chat-subscribed", "1"),))
            poster = asyncio.create_task(post_all())
            heartbeat = self._streams.heartbeat_seconds
            while True:
                try:
                    batch = await session.next_batch(heartbeat)
                except SessionClosed:
                    if failure:
                        raise failure[0] from None
                    return  # the client half-closed: end the stream like the original server
                for d in batch:
                    if d.kind == "message":
                        yield d.message_bytes()
        finally:
            if poster is not None:
                poster.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await poster
            session.close()
            await self._slots.release(slot)
            metrics.OPEN_STREAMS.labels("StreamMessages").dec()
            if online:
                await self._presence.disconnected(caller.id)

    async def _post_from_stream(
        self, caller: UserProfile, token: str, req: pb.MessageRequest
    ) -> None:
        if req.jwt_token and req.jwt_token != token:
            other = self._caller.of_token(req.jwt_token)
            if other.id != caller.id:
                raise PermissionDenied("every request on a stream must carry the same user")
        self._chat.check_acting_user(caller, req.user_id, "user_id")
        await post(self._chat, caller, req)


def _entries(batch: list[Delivery]) -> bytes:
    metrics.STREAM_WRITES.inc()
    metrics.EVENTS_DELIVERED.inc(len(batch))
    for d in batch:
        if d.kind == "message":
            ts = d.event.message.timestamp_ms
            if ts:
                metrics.DELIVERY_LATENCY.observe(max(0.0, time.time() - ts / 1000))
            break
    return b"".join(d.entry for d in batch)
