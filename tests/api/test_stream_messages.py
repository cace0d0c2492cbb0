"""StreamMessages (bidirectional): the original plan's streaming contract."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.chat_client import ChatClient


class BidiStream:
    def __init__(self, client: ChatClient, metadata: bool = True) -> None:
        self.outgoing: asyncio.Queue[pb.MessageRequest | None] = asyncio.Queue()
        self.received: list[pb.MessageResponse] = []
        self.call = client.stub.StreamMessages(
            self._requests(), metadata=client.metadata if metadata else None
        )
        self.error: grpc.aio.AioRpcError | None = None
        self.task = asyncio.create_task(self._read())

    async def _requests(self) -> AsyncIterator[pb.MessageRequest]:
        while (item := await self.outgoing.get()) is not None:
            yield item

    async def _read(self) -> None:
        try:
            async for response in self.call:
                self.received.append(response)
        except grpc.aio.AioRpcError as exc:
            self.error = exc

    async def until(self, predicate: Any, timeout: float = 10) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("condition not met in time")
            await asyncio.sleep(0.01)


async def test_each_written_request_is_posted_and_every_member_stream_gets_it(
    user: UserFactory,
) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    a, b = BidiStream(alice), BidiStream(bob)
    await a.call.initial_metadata()
    await b.call.initial_metadata()
    for i in range(5):
        await a.outgoing.put(pb.MessageRequest(group_id=group.id, content=f"a{i}"))
    await a.until(lambda: len(a.received) >= 5)
    await b.until(lambda: len(b.received) >= 5)
    assert [m.content for m in a.received] == [m.content for m in b.received]
    assert [m.seq for m in a.received] == [2, 3, 4, 5, 6]
    assert all(m.user_id == alice.user_id and m.id > 0 for m in a.received)
    await a.outgoing.put(None)
    await asyncio.wait_for(a.task, 10)
    assert a.error is None  # half-close ends the stream cleanly, like the original server


async def test_bad_request_ends_only_the_senders_stream(user: UserFactory) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    a, b = BidiStream(alice), BidiStream(bob)
    await a.call.initial_metadata()
    await b.call.initial_metadata()
    await a.outgoing.put(pb.MessageRequest(group_id=group.id, content="fine"))
    await a.outgoing.put(pb.MessageRequest(group_id=group.id, content=""))
    await asyncio.wait_for(a.task, 10)
    assert a.error is not None and a.error.code() == grpc.StatusCode.INVALID_ARGUMENT
    await bob.send(group.id, "bob carries on")
    await b.until(lambda: [m.content for m in b.received] == ["fine", "bob carries on"])
    assert not b.task.done()
    history = await bob.all_history(group.id)
    assert [m.content for m in history[1:]] == ["fine", "bob carries on"]


async def test_user_id_naming_someone_else_is_permission_denied(user: UserFactory) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    a = BidiStream(alice)
    await a.outgoing.put(
        pb.MessageRequest(group_id=group.id, user_id=bob.user_id, content="as bob")
    )
    await asyncio.wait_for(a.task, 10)
    assert a.error is not None and a.error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert len(await alice.all_history(group.id)) == 1


async def test_posting_to_a_group_of_which_one_is_not_a_member_is_refused(
    user: UserFactory,
) -> None:
    alice, mallory = user(), user()
    group = await alice.create_group()
    m = BidiStream(mallory)
    await m.outgoing.put(pb.MessageRequest(group_id=group.id, content="intrusion"))
    await asyncio.wait_for(m.task, 10)
    assert m.error is not None and m.error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_token_of_another_user_mid_stream_is_refused(
    user: UserFactory,
) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    a = BidiStream(alice, metadata=False)
    await a.outgoing.put(pb.MessageRequest(group_id=group.id, content="1",
                                           jwt_token=alice.token))
    await a.until(lambda: len(a.received) >= 1)
    await a.outgoing.put(pb.MessageRequest(group_id=group.id, content="2", jwt_token=bob.token))
    await asyncio.wait_for(a.task, 10)
    assert a.error is not None and a.error.code() == grpc.StatusCode.PERMISSION_DENIED
