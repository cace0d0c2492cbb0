"""A small test client over the generated stubs: what an application would write."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import grpc

from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc


class Subscription:
    """Reads a Subscribe stream in the background; tests await what they expect."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.events: list[pb.ChatEvent] = []
        self.batches = 0
        self.error: grpc.aio.AioRpcError | None = None
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for response in self.call:
                async with self._changed:
                    self.batches += 1
                    self.events.extend(response.events)
                    self._changed.notify_all()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.error = exc
        finally:
            async with self._changed:
                self._changed.notify_all()

    @property
    def done(self) -> bool:
        return self._task.done()

    def messages(self, group_id: int | None = None) -> list[pb.MessageResponse]:
        return [
            e.message
            for e in self.events
            if e.WhichOneof("event") == "message"
            and (group_id is None or e.message.group_id == group_id)
        ]

    def of_kind(self, kind: str) -> list[pb.ChatEvent]:
        return [e for e in self.events if e.WhichOneof("event") == kind]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async def _wait() -> None:
            async with self._changed:
                while not predicate():
                    if self._task.done():
                        raise AssertionError(f"stream ended before the condition: {self.error}")
                    await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout)

    async def wait_messages(
        self, count: int, group_id: int | None = None, timeout: float = 10.0
    ) -> list[pb.MessageResponse]:
        await self.wait_until(lambda: len(self.messages(group_id)) >= count, timeout)
        return self.messages(group_id)

    async def wait_ended(self, timeout: float = 10.0) -> grpc.aio.AioRpcError | None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        return self.error

    async def close(self) -> None:
        self.call.cancel()
        with contextlib.suppress(BaseException):
            await self._task


class ChatClient:
    def __init__(self, channel: grpc.aio.Channel, token: str, user_id: int) -> None:
        self.stub = pb_grpc.ChatServiceStub(channel)
        self.token = token
        self.user_id = user_id
        self.metadata = (("authorization", f"Bearer {token}"),)
        self._subs: list[Subscription] = []

    async def create_group(
        self, name: str = "", members: Iterable[int] = (), invite_only: bool = False,
        description: str = "",
    ) -> pb.Group:
        return await self.stub.CreateGroup(
            pb.CreateGroupRequest(
                name=name or f"group-{uuid.uuid4().hex[:6]}",
                description=description,
                member_ids=list(members),
                invite_only=invite_only,
            ),
            metadata=self.metadata,
        )

    async def join(self, group_id: int, user_id: int = 0) -> pb.JoinGroupResponse:
        return await self.stub.JoinGroup(
            pb.JoinGroupRequest(group_id=group_id, user_id=user_id), metadata=self.metadata
        )

    async def leave(self, group_id: int, user_id: int = 0) -> pb.LeaveGroupResponse:
        return await self.stub.LeaveGroup(
            pb.LeaveGroupRequest(group_id=group_id, user_id=user_id), metadata=self.metadata
        )

    async def members(self, group_id: int) -> list[pb.User]:
        reply = await self.stub.GetGroupMembers(
            pb.GetGroupMembersRequest(group_id=group_id), metadata=self.metadata
        )
        return list(reply.members)

    async def send(
        self, group_id: int, content: str, key: str | None = None, type: int = pb.TEXT
    ) -> pb.MessageResponse:
        return await self.stub.SendMessage(
            pb.SendMessageRequest(
                group_id=group_id,
                content=content,
                type=type,  # type: ignore[arg-type]
                client_msg_id=uuid.uuid4().hex if key is None else key,
            ),
            metadata=self.metadata,
        )

    async def history(
        self, group_id: int, before_id: int = 0, limit: int = 0
    ) -> pb.MessageHistoryResponse:
        return await self.stub.GetMessageHistory(
            pb.GetHistoryRequest(group_id=group_id, before_id=before_id, limit=limit),
            metadata=self.metadata,
        )

    async def all_history(self, group_id: int, page: int = 50) -> list[pb.MessageResponse]:
        out: list[pb.MessageResponse] = []
        before = 0
        while True:
            reply = await self.history(group_id, before, page)
            out[:0] = list(reply.messages)
            if not reply.has_more or not reply.messages:
                return out
            before = reply.messages[0].id

    async def typing(self, group_id: int, is_typing: bool = True) -> pb.TypingResponse:
        return await self.stub.SendTypingIndicator(
            pb.TypingRequest(group_id=group_id, is_typing=is_typing), metadata=self.metadata
        )

    async def my_groups(self) -> list[pb.Group]:
        reply = await self.stub.ListMyGroups(pb.ListMyGroupsRequest(), metadata=self.metadata)
        return list(reply.groups)

    async def get_group(self, group_id: int) -> pb.Group:
        return await self.stub.GetGroup(
            pb.GetGroupRequest(group_id=group_id), metadata=self.metadata
        )

    async def subscribe(
        self, positions: dict[int, int] | None = None, ready: bool = True
    ) -> Subscription:
        request = pb.SubscribeRequest(
            positions=[
                pb.GroupPosition(group_id=g, last_seq=s) for g, s in (positions or {}).items()
            ]
        )
        sub = Subscription(self.stub.Subscribe(request, metadata=self.metadata))
        self._subs.append(sub)
        if ready:
            # The server registers the stream before sending anything; its initial metadata
            # arrives once the handler runs, so wait for that.
            await sub.call.initial_metadata()
        return sub

    async def close(self) -> None:
        for sub in self._subs:
            await sub.close()


async def gather_limited(awaitables: Iterable[Any], limit: int = 64) -> list[Any]:
    """Run coroutines concurrently, at most `limit` in flight (like a well-behaved client)."""
    gate = asyncio.Semaphore(limit)

    async def one(aw: Any) -> Any:
        async with gate:
            return await aw

    return list(await asyncio.gather(*(one(a) for a in awaitables)))


async def expect_status(code: grpc.StatusCode, awaitable: Any) -> grpc.aio.AioRpcError:
    try:
        await awaitable
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == code, f"expected {code}, got {exc.code()}: {exc.details()}"
        return exc
    raise AssertionError(f"expected {code}, the call succeeded")
