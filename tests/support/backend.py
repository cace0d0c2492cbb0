"""A client of chat.ChatBackend (the app's backend API) for tests, with a backend token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint_backend
from chat_service.gen import chat_backend_pb2 as bpb
from chat_service.gen import chat_backend_pb2_grpc as bpb_grpc


class BackendClient:
    def __init__(self, channel: grpc.aio.Channel, token: str) -> None:
        self.stub = bpb_grpc.ChatBackendStub(channel)
        self.metadata = (("authorization", f"Bearer {token}"),)

    async def call(self, method: str, request: Any) -> Any:
        return await getattr(self.stub, method)(request, metadata=self.metadata, timeout=20)

    async def upsert(self, *users: bpb.BackendUser) -> list[int]:
        reply = await self.call("UpsertUsers", bpb.UpsertUsersRequest(users=list(users)))
        return list(reply.changed_ids)

    async def create_group(self, owner_id: int, members: list[int], *, name: str = "Team",
                           invite_only: bool = True, avatar: str = "") -> bpb.BackendGroup:
        return await self.stub.CreateGroup(bpb.BackendCreateGroupRequest(
            name=name, owner_id=owner_id, member_ids=members, invite_only=invite_only,
            avatar=avatar), metadata=self.metadata, timeout=20)

    async def post(self, group_id: int, content: str, act_as: int = 0,
                   client_msg_id: str = "") -> bpb.BackendPosted:
        return await self.stub.PostMessage(bpb.BackendPostRequest(
            group_id=group_id, content=content, act_as=act_as, client_msg_id=client_msg_id),
            metadata=self.metadata, timeout=20)

    async def moderate(self, group_id: int, user_id: int, kind: int, reason: str = "",
                       duration_seconds: int = 0) -> bpb.BackendModeration:
        return await self.stub.ModerateMember(bpb.BackendModerateRequest(
            group_id=group_id, user_id=user_id, kind=kind,  # type: ignore[arg-type]
            reason=reason, duration_seconds=duration_seconds), metadata=self.metadata,
            timeout=20)


@pytest.fixture
async def backend(stack: Cluster) -> AsyncIterator[BackendClient]:
    async with grpc.aio.insecure_channel(stack.gateway) as channel:
        yield BackendClient(channel, mint_backend(stack.backend_jwt_secret))
