"""Clients that behave like a good production client: they retry and resume.

- ResilientSubscriber keeps the highest seq per group and, whenever its stream ends, opens a
  new one with those positions: the server replays what was missed.
- SteadySender sends at a fixed rate with an idempotency key per message and retries a failed
  send with the same key until it is acknowledged or the run is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from dataclasses import dataclass, field

import grpc

from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc


class ResilientSubscriber:
    def __init__(
        self, address: str, token: str, groups: list[int], idle_timeout: float | None = None
    ) -> None:
        """`idle_timeout`: reconnect when nothing (not even a heartbeat) arrived for this long,
        which is how a client notices a server that holds the connection but stopped."""
        self.idle_timeout = idle_timeout
        self.address = address
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.positions: dict[int, int] = {}
        self.received: dict[int, list[int]] = {g: [] for g in groups}
        self.errors: Counter[str] = Counter()
        self.presence: list[pb.PresenceEvent] = []
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 15)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                async with grpc.aio.insecure_channel(self.address) as channel:
                    stub = pb_grpc.ChatServiceStub(channel)
                    request = pb.SubscribeRequest(
                        positions=[pb.GroupPosition(group_id=g, last_seq=s)
                                   for g, s in self.positions.items()]
                    )
                    call = stub.Subscribe(request, metadata=self.metadata)
                    try:  # a stopped server accepts the call but never answers
                        await asyncio.wait_for(call.initial_metadata(), self.idle_timeout or 15)
                    except TimeoutError:
                        call.cancel()
                        self.errors["IDLE_TIMEOUT"] += 1
                        raise grpc.aio.AioRpcError(
                            grpc.StatusCode.DEADLINE_EXCEEDED,
                            grpc.aio.Metadata(), grpc.aio.Metadata(), "no answer"
                        ) from None
                    self._ready.set()
                    backoff = 0.05
                    iterator = call.__aiter__()
                    while True:
                        try:
                            response = await asyncio.wait_for(
                                iterator.__anext__(), self.idle_timeout
                            )
                        except StopAsyncIteration:
                            break
                        except TimeoutError:
                            call.cancel()
                            self.errors["IDLE_TIMEOUT"] += 1
                            break
                        for event in response.events:
                            self._handle(event)
            except grpc.aio.AioRpcError as exc:
                self.errors[exc.code().name] += 1
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    def _handle(self, event: pb.ChatEvent) -> None:
        kind = event.WhichOneof("event")
        if kind == "message":
            m = event.message
            if m.group_id in self.received:
                self.received[m.group_id].append(m.seq)
            self.positions[m.group_id] = max(self.positions.get(m.group_id, 0), m.seq)
        elif kind == "presence":
            self.presence.append(event.presence)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


@dataclass
class SteadySender:
    address: str
    token: str
    group_id: int
    rate: float = 50.0
    acknowledged: list[pb.MessageResponse] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        metadata = (("authorization", f"Bearer {self.token}"),)
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = pb_grpc.ChatServiceStub(channel)
            i = 0
            while not self._stop.is_set():
                key = uuid.uuid4().hex
                request = pb.SendMessageRequest(group_id=self.group_id, content=f"m{i}",
                                                client_msg_id=key)
                while True:  # retry the same key until acknowledged
                    try:
                        reply = await stub.SendMessage(request, metadata=metadata, timeout=5)
                        self.acknowledged.append(reply)
                        break
                    except grpc.aio.AioRpcError as exc:
                        self.errors[exc.code().name] += 1
                        if self._stop.is_set():
                            break
                        await asyncio.sleep(0.1)
                i += 1
                await asyncio.sleep(1 / self.rate)

    def stop(self) -> None:
        self._stop.set()


def exactly_once_in_order(seqs: list[int], expected: list[int]) -> tuple[bool, str]:
    dupes = [s for s, n in Counter(seqs).items() if n > 1]
    missing = sorted(set(expected) - set(seqs))
    in_order = seqs == sorted(seqs)
    ok = not dupes and not missing and in_order
    return ok, f"duplicates={dupes[:10]} missing={missing[:10]} in_order={in_order}"


@dataclass
class SteadyLoad:
    """The load the fault tests run under: every member of a group subscribed through a
    resuming client, and some of them sending at a steady rate with retries."""

    group_id: int
    subscribers: list[ResilientSubscriber]
    senders: list[SteadySender]
    tasks: list[asyncio.Task[None]]

    @classmethod
    async def start(
        cls,
        address: str,
        group_id: int,
        tokens: list[str],
        *,
        senders: int,
        rate: float,
        idle_timeout: float | None = None,
    ) -> SteadyLoad:
        subs = [ResilientSubscriber(address, tok, [group_id], idle_timeout) for tok in tokens]
        for s in subs:
            await s.start()
        sending = [SteadySender(address, tok, group_id, rate=rate) for tok in tokens[:senders]]
        tasks = [asyncio.create_task(s.run()) for s in sending]
        return cls(group_id, subs, sending, tasks)

    def acknowledged(self) -> int:
        return sum(len(s.acknowledged) for s in self.senders)

    async def stop_sending(self) -> list[int]:
        """Stop the senders; the acknowledged seqs, sorted."""
        for sender in self.senders:
            sender.stop()
        await asyncio.gather(*self.tasks)
        return sorted(m.seq for s in self.senders for m in s.acknowledged)

    @property
    def send_errors(self) -> Counter[str]:
        return sum((s.errors for s in self.senders), Counter())

    async def caught_up(self, head: int, timeout: float = 30) -> float:
        """Seconds until every subscriber has seen `head`."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not all(s.positions.get(self.group_id, 0) >= head for s in self.subscribers):
            if loop.time() - started > timeout:
                seen = [s.positions.get(self.group_id) for s in self.subscribers]
                raise AssertionError(f"not caught up: {seen} < {head}")
            await asyncio.sleep(0.05)
        return loop.time() - started

    def assert_exactly_once(self, head: int, first: int = 2) -> None:
        for s in self.subscribers:
            ok, why = exactly_once_in_order(s.received[self.group_id],
                                            list(range(first, head + 1)))
            assert ok, why

    async def stop(self) -> None:
        for s in self.subscribers:
            await s.stop()
