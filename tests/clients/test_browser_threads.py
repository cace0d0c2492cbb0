"""Threads, search and pins in headless Chromium through the web demo (Envoy, gRPC-Web).

clients/web/e2e/threads.e2e.mjs drives two users: Alice replies in a thread (Bob sees
"1 reply" live; the reply stays out of both timelines), Bob replies "also to the group", Alice
pins the question (Bob sees it pinned live and is offered no Pin button), Bob searches (the
word highlighted with <mark>, markup in a message shown as text) and opens a thread reply from
the results. Screenshots go to tests/clients/screenshots/.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.clients.support import WEB_DIR, bearer, ensure_deps, history, run, stub
from tests.clients.test_browser_chat import SCREENSHOTS, _run_script


@pytest.fixture(scope="module")
def web_cluster() -> Iterator[Cluster]:
    ensure_deps("browser")
    run(["npm", "run", "build"], WEB_DIR)
    cluster = Cluster(pods=1, web_root=WEB_DIR / "dist").start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.timeout(300)
def test_threads_search_and_pins_in_the_browser(web_cluster: Cluster, tmp_path: Path) -> None:
    base = random.randint(10_000, 9_000_000) * 10
    alice, bob = base + 1, base + 2
    token_a = mint(web_cluster.jwt_secret, alice, name="Alice")
    token_b = mint(web_cluster.jwt_secret, bob, name="Bob")
    word = "w" + uuid.uuid4().hex[:8]
    channel, chat = stub(web_cluster.gateway)
    with channel:
        chat.ListMyGroups(pb.ListMyGroupsRequest(), metadata=bearer(token_b), timeout=10)
        group = chat.CreateGroup(pb.CreateGroupRequest(name="Threads room", member_ids=[bob]),
                                 metadata=bearer(token_a), timeout=10)
    _run_script("e2e/threads.e2e.mjs", {
        **os.environ,
        "WEB_URL": web_cluster.web_url, "TOKEN_A": token_a, "TOKEN_B": token_b,
        "GROUP_ID": str(group.id), "WORD": word, "SCREENSHOT_DIR": str(SCREENSHOTS),
        "FAILURE_DIR": str(tmp_path / "failures"),
    })

    # The server's view: the question is pinned with two replies, one of them in the timeline.
    messages = history(web_cluster.gateway, token_a, group.id)
    question = next(m for m in messages if m.content.startswith("where is the quarterly"))
    assert question.reply_count == 2 and question.pinned_by == alice
    timeline = [m.content for m in messages]
    assert "thanks, found it" in timeline and "in the shared drive" not in timeline
    for shot in ("30-thread-panel", "31-search", "32-pins"):
        assert (SCREENSHOTS / f"{shot}.png").stat().st_size > 1000
