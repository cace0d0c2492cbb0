"""Two users chat in headless Chromium through the web demo, served by Envoy with gRPC-Web.

A Cluster (PostgreSQL, Redis, two service processes, Envoy that also serves clients/web/dist)
runs clients/web/e2e/chat.e2e.mjs (playwright-core driving Debian's chromium):

* test_two_users_chat_in_the_browser: @mention autocomplete, live unread counts, read
  receipts ("Seen by"), typing, reactions, infinite scroll back, a page reload, a dropped
  stream while every pod restarts (resume from positions: nothing lost, nothing twice), editing
  and deleting (Bob sees "(edited)" and the tombstone live) and presence (Alice online; Carol
  signs in and out in a third context and Bob's member list follows);
* test_image_upload_in_the_browser: preview, chunked UploadChunk, IMAGE message, both users
  see the picture (DownloadFile).

Screenshots go to tests/clients/screenshots/ (committed for reviewers), failure screenshots to
the test's tmp dir. Dependencies are installed by clients/web/scripts/ensure-deps.sh when
missing; if that fails the tests fail (they never skip).
"""

from __future__ import annotations

import os
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.clients.support import WEB_DIR, bearer, ensure_deps, history, png, run, stub

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
SEED = 60  # more than one history page (50), so scrolling back has to load another page


@dataclass
class Users:
    alice: int
    bob: int
    carol: int
    token_a: str
    token_b: str
    token_c: str


@pytest.fixture(scope="module")
def web_cluster() -> Iterator[Cluster]:
    ensure_deps("browser")
    run(["npm", "run", "build"], WEB_DIR)
    cluster = Cluster(
        pods=2,
        web_root=WEB_DIR / "dist",
        extra_env={"HEARTBEAT_SECONDS": "5", "SHUTDOWN_GRACE_SECONDS": "2"},
    ).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _users(cluster: Cluster) -> Users:
    base = random.randint(10_000, 9_000_000) * 10
    ids = (base + 1, base + 2, base + 3)
    tokens = [
        mint(cluster.jwt_secret, uid, name=name)
        for uid, name in zip(ids, ("Alice", "Bob", "Carol"), strict=True)
    ]
    channel, chat = stub(cluster.gateway)
    with channel:  # the service learns names from tokens: let Bob and Carol be seen once
        for token in tokens[1:]:
            chat.ListMyGroups(pb.ListMyGroupsRequest(), metadata=bearer(token), timeout=10)
    return Users(*ids, *tokens)


def _group(cluster: Cluster, users: Users, name: str, seed: int) -> int:
    channel, chat = stub(cluster.gateway)
    with channel:
        group = chat.CreateGroup(
            pb.CreateGroupRequest(name=name, member_ids=[users.bob, users.carol]),
            metadata=bearer(users.token_a),
            timeout=10,
        )
        for i in range(1, seed + 1):
            chat.SendMessage(
                pb.SendMessageRequest(
                    group_id=group.id,
                    content=f"hello from the seed {i}",
                    client_msg_id=uuid.uuid4().hex,
                ),
                metadata=bearer(users.token_c),
                timeout=10,
            )
        return group.id


def _restart_pods(cluster: Cluster) -> None:
    """Kill every pod abruptly (streams drop), then start them again on the same ports."""
    for svc in cluster.services:
        svc.kill()
    for svc in cluster.services:
        cluster.restart_pod(svc)


def _run_script(script: str, env: dict[str, str], timeout: float = 120) -> str:
    """Run a browser scenario in clients/web (env added to ours); it must end with E2E OK."""
    proc = subprocess.run(
        ["node", script],
        cwd=WEB_DIR,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0 and "E2E OK" in proc.stdout, (
        f"{script} failed (exit {proc.returncode}; failure screenshots in "
        f"{env.get('FAILURE_DIR')}):\n{proc.stdout}"
    )
    print(proc.stdout)
    return proc.stdout


def _run_e2e(cluster: Cluster, users: Users, group_id: int, tmp: Path, **extra: str) -> str:
    image = tmp / "picture.png"
    image.write_bytes(png())
    failures = tmp / "failures"
    env = {
        **os.environ,
        "WEB_URL": cluster.web_url,
        "TOKEN_A": users.token_a,
        "TOKEN_B": users.token_b,
        "NAME_A": "Alice",
        "NAME_B": "Bob",
        "TOKEN_C": users.token_c,
        "NAME_C": "Carol",
        "GROUP_ID": str(group_id),
        "SCREENSHOT_DIR": str(SCREENSHOTS),
        "FAILURE_DIR": str(failures),
        "IMAGE_FILE": str(image),
        "CONTROL": "1",
        **extra,
    }
    output: list[str] = []
    started = time.monotonic()
    node = subprocess.Popen(
        ["node", "e2e/chat.e2e.mjs"],
        cwd=WEB_DIR,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    try:
        assert node.stdout is not None and node.stdin is not None
        for line in node.stdout:
            output.append(line)
            if line.startswith("CONTROL restart-pods"):
                _restart_pods(cluster)
                node.stdin.write("ok\n")
                node.stdin.flush()
        code = node.wait(timeout=60)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    text = "".join(output)
    assert code == 0 and "E2E OK" in text, (
        f"browser scenario failed (exit {code}; failure screenshots in {failures}):\n{text}"
    )
    print(f"browser scenario: {time.monotonic() - started:.1f}s\n{text}")
    return text


@pytest.mark.timeout(600)
def test_two_users_chat_in_the_browser(web_cluster: Cluster, tmp_path: Path) -> None:
    users = _users(web_cluster)
    group_id = _group(web_cluster, users, "Browser room", SEED)
    _run_e2e(web_cluster, users, group_id, tmp_path, SCENARIO="chat", SEED_COUNT=str(SEED))

    # The server's view agrees: every message the pages sent is stored exactly once.
    contents = [m.content for m in history(web_cluster.gateway, users.token_a, group_id)]
    for sent in (
        "Hi @Bob how are you?",
        "I'm fine, thanks!",
        "sent while Bob reloads",
        "sent after Bob's reload",
        "sent while Bob's stream was down",
    ):
        assert contents.count(sent) == 1, (sent, contents[-12:])
    messages = history(web_cluster.gateway, users.token_a, group_id)
    edited = [m for m in messages if m.content == "this message has no typo"]
    assert len(edited) == 1 and edited[0].edited_at_ms > 0, edited
    assert not any(m.content in ("this message has a tpyo", "never saved") for m in messages)
    deleted = [m for m in messages if m.deleted and m.user_id == users.alice]
    assert len(deleted) == 1 and deleted[0].content == "", deleted
    for shot in (
        "03-alice-seen-by-bob",
        "04-alice-sees-bob-typing",
        "06-bob-after-reload",
        "12-bob-sees-edit-and-delete",
        "13-presence",
    ):
        assert (SCREENSHOTS / f"{shot}.png").stat().st_size > 1000


@pytest.mark.timeout(300)
def test_image_upload_in_the_browser(web_cluster: Cluster, tmp_path: Path) -> None:
    users = _users(web_cluster)
    group_id = _group(web_cluster, users, "Pictures", 0)
    _run_e2e(web_cluster, users, group_id, tmp_path, SCENARIO="upload", UPLOAD="required")
    messages = history(web_cluster.gateway, users.token_a, group_id)
    images = [m for m in messages if m.type == pb.IMAGE]
    assert len(images) == 1
    assert images[0].attachment.content_type == "image/png"
    assert (images[0].attachment.width, images[0].attachment.height) == (96, 64)
