"""Issue 15 in headless Chromium (clients/web/e2e/backend.e2e.mjs): the web demo names a member
who never connected (the app synced the directory), follows the app's renames of a user and of
the group live (user_updated, group_updated), and lets the owner mute a member from the
roster. Screenshot: tests/clients/screenshots/20-backend-directory-and-moderation.png."""

from __future__ import annotations

import os
import random
import subprocess
import time

import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint, mint_backend
from chat_service.gen import chat_backend_pb2 as bpb
from chat_service.gen import chat_backend_pb2_grpc as bpb_grpc
from chat_service.gen import chat_pb2 as pb
from tests.clients.support import WEB_DIR, bearer, stub
from tests.clients.test_browser_chat import SCREENSHOTS, web_cluster  # noqa: F401 (fixture)


@pytest.mark.timeout(300)
def test_directory_names_live_renames_and_muting_in_the_browser(
    web_cluster: Cluster,  # noqa: F811
) -> None:
    base = random.randint(10_000, 9_000_000) * 10
    alice, erin, mallory = base + 1, base + 2, base + 3
    token_a = mint(web_cluster.jwt_secret, alice, name="Alice")
    backend_md = bearer(mint_backend(web_cluster.backend_jwt_secret))
    pod = web_cluster.services[0].address  # the backend calls a pod, not the public Envoy
    with grpc.insecure_channel(pod) as backend_channel:
        backend = bpb_grpc.ChatBackendStub(backend_channel)
        backend.UpsertUsers(bpb.UpsertUsersRequest(users=[
            bpb.BackendUser(id=erin, name="Erin Synced"),
            bpb.BackendUser(id=mallory, name="Mallory"),
        ]), metadata=backend_md, timeout=10)
        channel, chat = stub(web_cluster.gateway)
        with channel:
            group = chat.CreateGroup(pb.CreateGroupRequest(name="Backend room",
                                                           member_ids=[erin, mallory]),
                                     metadata=bearer(token_a), timeout=10)
        proc = subprocess.Popen(
            ["node", "e2e/backend.e2e.mjs"], cwd=WEB_DIR,
            env={**os.environ, "WEB_URL": f"http://{web_cluster.gateway}", "TOKEN_A": token_a,
                 "GROUP_ID": str(group.id), "USER_E": str(erin), "USER_M": str(mallory),
                 "SCREENSHOT_DIR": str(SCREENSHOTS)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            lines.append(line)
            if line.strip() == "READY":
                backend.UpsertUsers(bpb.UpsertUsersRequest(users=[
                    bpb.BackendUser(id=erin, name="Erin Renamed")]), metadata=backend_md,
                    timeout=10)
                backend.UpdateGroup(bpb.BackendUpdateGroupRequest(
                    group_id=group.id, name="Renamed by the app"), metadata=backend_md,
                    timeout=10)
            assert time.monotonic() < deadline, "".join(lines)
        proc.wait(timeout=30)
        output = "".join(lines)
        assert proc.returncode == 0 and "E2E OK" in output, output
        log = backend.ListModeration(bpb.BackendListModerationRequest(group_id=group.id),
                                     metadata=backend_md, timeout=10)
    assert [(a.kind, a.user_id, a.actor_id) for a in log.actions] == [
        (bpb.BackendModeration.MUTE, mallory, alice)]
    channel, chat = stub(web_cluster.gateway)
    with channel:
        try:
            chat.SendMessage(pb.SendMessageRequest(group_id=group.id, content="hello?"),
                             metadata=bearer(mint(web_cluster.jwt_secret, mallory)), timeout=10)
            raise AssertionError("a muted member posted")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
