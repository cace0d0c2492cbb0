"""Authentication through the real API: Laravel's HS256 (tymon/jwt-auth) and RS256 (Passport)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import jwt
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.ports import free_port
from chat_devstack.processes import ServiceProcess
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc
from tests.conftest import UserFactory
from tests.support.chat_client import ChatClient, expect_status
from tests.support.keys import rsa_pair


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(claims: dict[str, object]) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


async def _list_groups(channel: grpc.aio.Channel, token: str | None) -> object:
    stub = pb_grpc.ChatServiceStub(channel)
    md = (("authorization", f"Bearer {token}"),) if token is not None else None
    return await stub.ListMyGroups(pb.ListMyGroupsRequest(), metadata=md)


async def test_requests_without_a_valid_token_are_unauthenticated(
    channel: grpc.aio.Channel, secret: str
) -> None:
    now = int(time.time())
    cases = {
        "missing": None,
        "expired": mint(secret, 7, ttl=-120),
        "wrong signature": mint("not-the-secret-" * 3, 7),
        "alg none": _unsigned({"sub": "7", "exp": now + 600}),
        "garbage": "not.a.jwt",
        "no sub": jwt.encode({"exp": now + 600}, secret, algorithm="HS256"),
        "non-numeric sub": mint(secret, 7, sub="alice"),
        "sub with a superscript digit": mint(secret, 7, sub="\u00b2"),
        "sub with Arabic-Indic digits": mint(secret, 7, sub="\u0667"),
        "sub with leading zeros or spaces": mint(secret, 7, sub=" 0007 "),
        "sub that is a JSON float": mint(secret, 7, sub=7.0),
        "not yet valid": mint(secret, 7, nbf=now + 3600),
        "HS512 not accepted": jwt.encode({"sub": "7", "exp": now + 600}, secret * 2,
                                         algorithm="HS512"),
    }
    for name, token in cases.items():
        err = await expect_status(grpc.StatusCode.UNAUTHENTICATED, _list_groups(channel, token))
        assert err.details(), name
    stub = pb_grpc.ChatServiceStub(channel)
    await expect_status(
        grpc.StatusCode.UNAUTHENTICATED,
        stub.ListMyGroups(pb.ListMyGroupsRequest(), metadata=(("authorization", "Basic x"),)),
    )


async def test_expiry_has_a_small_leeway(channel: grpc.aio.Channel, secret: str) -> None:
    await _list_groups(channel, mint(secret, 7, ttl=-5))  # 5 s late is within the 30 s leeway


async def test_token_in_the_request_field_works_without_metadata(
    channel: grpc.aio.Channel, secret: str, new_user_id: object
) -> None:
    uid = new_user_id()  # type: ignore[operator]
    stub = pb_grpc.ChatServiceStub(channel)
    group = await stub.CreateGroup(
        pb.CreateGroupRequest(name="field", jwt_token=mint(secret, uid))
    )
    assert group.created_by == uid


async def test_identity_fields_must_match_the_token(user: UserFactory) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    await expect_status(
        grpc.StatusCode.PERMISSION_DENIED,
        alice.stub.CreateGroup(
            pb.CreateGroupRequest(name="x", created_by=bob.user_id), metadata=alice.metadata
        ),
    )
    await expect_status(
        grpc.StatusCode.PERMISSION_DENIED,
        alice.stub.SendTypingIndicator(
            pb.TypingRequest(group_id=group.id, user_id=bob.user_id, is_typing=True),
            metadata=alice.metadata,
        ),
    )
    created = await alice.stub.CreateGroup(
        pb.CreateGroupRequest(name="mine", created_by=alice.user_id), metadata=alice.metadata
    )
    assert created.created_by == alice.user_id


async def test_metadata_and_field_tokens_naming_different_users_are_refused(
    user: UserFactory,
) -> None:
    alice, bob = user(), user()
    await expect_status(
        grpc.StatusCode.PERMISSION_DENIED,
        alice.stub.ListMyGroups(pb.ListMyGroupsRequest(jwt_token=bob.token),
                                metadata=alice.metadata),
    )


@pytest.fixture(scope="module")
def passport_keys() -> tuple[str, str]:
    return rsa_pair()


@pytest.fixture(scope="module")
def passport_service(
    stack: Cluster, passport_keys: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """A second pod configured like an app using Laravel Passport (RS256 only)."""
    _, public = passport_keys
    folder: Path = tmp_path_factory.mktemp("passport")
    key_file = folder / "oauth-public.key"
    key_file.write_text(public)
    env = {**stack.env, "JWT_SECRET": "", "JWT_ALGORITHMS": "RS256",
           "JWT_PUBLIC_KEY_FILE": str(key_file), "JWT_AUDIENCE": "chat-client-id"}
    svc = ServiceProcess("passport", env, free_port(), folder).start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
async def passport_channel(passport_service: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(passport_service.address) as ch:
        yield ch


async def test_passport_rs256_tokens_are_accepted(
    passport_channel: grpc.aio.Channel, passport_keys: tuple[str, str], new_user_id: object
) -> None:
    private, _ = passport_keys
    uid = new_user_id()  # type: ignore[operator]
    now = int(time.time())
    token = jwt.encode(
        {"aud": "chat-client-id", "jti": "abc", "iat": now, "nbf": now, "exp": now + 600,
         "sub": str(uid), "scopes": []},
        private,
        algorithm="RS256",
    )
    client = ChatClient(passport_channel, token, uid)
    group = await client.create_group("passport")
    assert group.created_by == uid


async def test_rs256_service_refuses_key_confusion_wrong_audience_and_hs256(
    passport_channel: grpc.aio.Channel, passport_keys: tuple[str, str]
) -> None:
    private, public = passport_keys
    now = int(time.time())
    claims = {"aud": "chat-client-id", "sub": "9", "exp": now + 600}
    # HS256 signed with the RS256 public key as the HMAC secret: the classic confusion attack.
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    import hashlib
    import hmac

    sig = _b64(hmac.new(public.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest())
    confused = f"{header}.{body}.{sig}"
    wrong_aud = jwt.encode({**claims, "aud": "other"}, private, algorithm="RS256")
    other_key, _ = rsa_pair()
    rotated_out = jwt.encode(claims, other_key, algorithm="RS256")
    for token in (confused, wrong_aud, rotated_out, _unsigned(claims)):
        await expect_status(
            grpc.StatusCode.UNAUTHENTICATED, _list_groups(passport_channel, token)
        )
