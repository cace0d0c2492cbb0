"""`chat token --backend` mints a backend token for chat.ChatBackend (issue 15) that the real
service accepts there, and which chat.ChatService refuses."""

from __future__ import annotations

import os
import subprocess

import grpc
import jwt

from chat_devstack.cluster import Cluster
from chat_service.gen import chat_backend_pb2 as bpb
from chat_service.gen import chat_backend_pb2_grpc as bpb_grpc
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc
from tests.clients.test_cli import CHAT


def test_backend_token_opens_the_backend_api_only(stack: Cluster) -> None:
    proc = subprocess.run(
        [CHAT, "token", "--backend"],
        env={**os.environ, "BACKEND_JWT_SECRET": stack.backend_jwt_secret},
        capture_output=True, text=True, timeout=30, check=True,
    )
    token = proc.stdout.strip()
    claims = jwt.decode(token, stack.backend_jwt_secret, algorithms=["HS256"])
    assert claims["chat_role"] == "service" and claims["exp"] - claims["iat"] <= 3600
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(stack.gateway) as channel:
        backend = bpb_grpc.ChatBackendStub(channel)
        listed = backend.ListModeration(bpb.BackendListModerationRequest(group_id=0),
                                        metadata=metadata, timeout=10)
        assert isinstance(listed, bpb.BackendModerationList)
        try:
            pb_grpc.ChatServiceStub(channel).ListMyGroups(pb.ListMyGroupsRequest(),
                                                          metadata=metadata, timeout=10)
            raise AssertionError("a backend token passed as a user")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_user_token_still_needs_a_user() -> None:
    proc = subprocess.run([CHAT, "token"], capture_output=True, text=True, timeout=30,
                          check=False)
    assert proc.returncode == 2 and "--user is required" in proc.stderr
