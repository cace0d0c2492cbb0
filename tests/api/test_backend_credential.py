"""The backend credential (issue 15), both directions of the authorization matrix:

- nothing a user holds reaches chat.ChatBackend: user tokens (even carrying the service
  claim), tokens without the claim, expired or over-long-lived ones, no token, or a token in
  a request field are refused on every backend method, before the request is read;
- a backend token cannot pass as a user on chat.ChatService (nor can a token carrying the
  service claim that is signed with the users' key).
"""

from __future__ import annotations

import time
from typing import Any

import grpc
import jwt
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint, mint_backend
from chat_service.gen import chat_backend_pb2 as bpb
from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.backend import BackendClient, backend  # noqa: F401 - fixture
from tests.support.chat_client import expect_status

BACKEND_METHODS = [m.name for m in bpb.DESCRIPTOR.services_by_name["ChatBackend"].methods]
UNAUTH = grpc.StatusCode.UNAUTHENTICATED


def forged(stack: Cluster) -> dict[str, str]:
    """Credentials that must never open the backend API, by what is wrong with them."""
    now = int(time.time())
    user_key = stack.jwt_secret
    backend_key = stack.backend_jwt_secret
    return {
        "user token": mint(user_key, 42, name="Mallory"),
        "user token claiming chat_role service": mint(user_key, 42, chat_role="service"),
        "service-shaped token signed with the users' key": jwt.encode(
            {"sub": "laravel", "iat": now, "exp": now + 60, "chat_role": "service"}, user_key),
        "backend key without chat_role": jwt.encode(
            {"sub": "laravel", "iat": now, "exp": now + 60}, backend_key),
        "backend key, wrong chat_role": jwt.encode(
            {"sub": "laravel", "iat": now, "exp": now + 60, "chat_role": "admin"}, backend_key),
        "expired backend token": jwt.encode(
            {"sub": "laravel", "iat": now - 600, "exp": now - 300, "chat_role": "service"},
            backend_key),
        "backend token living a day": mint_backend(backend_key, ttl=86_400),
        "alg none": jwt.encode({"sub": "x", "iat": now, "exp": now + 60,
                                "chat_role": "service"}, "", algorithm="none"),
    }


def request_of(method: str) -> object:
    descriptor = bpb.DESCRIPTOR.services_by_name["ChatBackend"].methods_by_name[method]
    return getattr(bpb, descriptor.input_type.name)()


async def call(stack: Cluster, method: str, token: str | None) -> grpc.aio.AioRpcError | None:
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(stack.gateway) as channel:
        rpc = channel.unary_unary if method != "ExportUser" else channel.unary_stream
        callable_: Any = rpc(f"/chat.ChatBackend/{method}",
                        request_serializer=lambda m: m.SerializeToString(),
                        response_deserializer=lambda b: b)
        try:
            result = callable_(request_of(method), metadata=metadata, timeout=10)
            if method == "ExportUser":
                async for _ in result:
                    pass
            else:
                await result
        except grpc.aio.AioRpcError as exc:
            return exc
    return None


@pytest.mark.parametrize("method", BACKEND_METHODS)
async def test_no_user_credential_reaches_any_backend_method(stack: Cluster, method: str
                                                             ) -> None:
    for what, token in [*forged(stack).items(), ("no token", None)]:
        error = await call(stack, method, token)
        assert error is not None and error.code() == UNAUTH, f"{method} with {what}: {error}"


@pytest.mark.parametrize("method", BACKEND_METHODS)
async def test_a_backend_token_is_let_in_on_every_backend_method(stack: Cluster, method: str
                                                                 ) -> None:
    """The same calls with a good backend token get past authentication (the empty request
    may then be refused for what it lacks, never as unauthenticated)."""
    error = await call(stack, method, mint_backend(stack.backend_jwt_secret))
    assert error is None or error.code() not in (UNAUTH, grpc.StatusCode.PERMISSION_DENIED), (
        f"{method}: {error.code()} {error.details()}" if error else method)


async def test_a_backend_token_cannot_act_as_a_user(stack: Cluster, user: UserFactory) -> None:
    alice = user("Alice")
    group = await alice.create_group(members=[])
    backend_token = mint_backend(stack.backend_jwt_secret)
    numeric_sub = jwt.encode({"sub": str(alice.user_id), "iat": int(time.time()),
                              "exp": int(time.time()) + 60, "chat_role": "service"},
                             stack.backend_jwt_secret)
    for token in (backend_token, numeric_sub):
        metadata = (("authorization", f"Bearer {token}"),)
        await expect_status(UNAUTH, alice.stub.ListMyGroups(pb.ListMyGroupsRequest(),
                                                            metadata=metadata))
        await expect_status(UNAUTH, alice.stub.SendMessage(
            pb.SendMessageRequest(group_id=group.id, content="as a user?"), metadata=metadata))
        # Nor through the original proto's request field.
        await expect_status(UNAUTH, alice.stub.GetGroup(
            pb.GetGroupRequest(group_id=group.id, jwt_token=token)))


async def test_a_user_token_carrying_the_service_claim_is_not_a_user_token_either(
    stack: Cluster, user: UserFactory
) -> None:
    alice = user("Alice")
    token = mint(stack.jwt_secret, alice.user_id, chat_role="service")
    await expect_status(UNAUTH, alice.stub.ListMyGroups(
        pb.ListMyGroupsRequest(), metadata=(("authorization", f"Bearer {token}"),)))


async def test_backend_calls_need_metadata_not_a_request_field(
    backend: BackendClient,  # noqa: F811 - fixture
) -> None:
    """The backend API has no jwt_token fields: a call without metadata is refused at once."""
    stub = backend.stub
    await expect_status(UNAUTH, stub.UpsertUsers(bpb.UpsertUsersRequest(), timeout=5))
