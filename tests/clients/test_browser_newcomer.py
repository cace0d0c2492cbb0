"""A newcomer's path in headless Chromium (issue 18, items 6-8): clients/web/e2e/newcomer.e2e.mjs.

* Alice's page is clients/web/embed.html: GroupChat mounted exactly as the web README's Laravel
  section shows, with `token: () => window.chatToken`. Her own messages must be recognised
  (own side, Edit and Delete, "Seen by"): with a token function the user id used to stay 0.
* Dave is a member the service has never seen (no name yet). When he signs in, Alice's member
  list, typing line and "Seen by" say "Dave" instead of "user N", without a reload.
* Dave uses a 390 px wide phone: one pane at a time (back button, full-width group list), a
  composer that fits, consecutive messages grouped under one name, the newest message and its
  "Seen by" in view; then 1280 px, list and chat side by side. The script checks bounding boxes
  and writes tests/clients/screenshots/14-17 (committed for reviewers).
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.clients.support import bearer, stub
from tests.clients.test_browser_chat import SCREENSHOTS, _run_script, web_cluster  # noqa: F401 (fixture)

SEED = 30  # enough for the phone's message list to scroll


@pytest.mark.timeout(300)
def test_embed_names_and_phone_layout(web_cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    base = random.randint(10_000, 9_000_000) * 10
    alice, dave = base + 1, base + 4
    token_a = mint(web_cluster.jwt_secret, alice, name="Alice")
    token_d = mint(web_cluster.jwt_secret, dave, name="Dave")
    channel, chat = stub(web_cluster.gateway)
    with channel:  # Dave makes no call here: the service must not know his name yet
        group = chat.CreateGroup(
            pb.CreateGroupRequest(name="Newcomers", member_ids=[dave]),
            metadata=bearer(token_a),
            timeout=10,
        )
        members = chat.GetGroupMembers(
            pb.GetGroupMembersRequest(group_id=group.id), metadata=bearer(token_a), timeout=10
        )
        assert [u.name for u in members.members if u.id == dave] == [""]
        for i in range(1, SEED + 1):
            chat.SendMessage(
                pb.SendMessageRequest(
                    group_id=group.id,
                    content=f"seeded by Alice {i}",
                    client_msg_id=uuid.uuid4().hex,
                ),
                metadata=bearer(token_a),
                timeout=10,
            )
    _run_script(
        "e2e/newcomer.e2e.mjs",
        {
            "WEB_URL": web_cluster.web_url,
            "TOKEN_A": token_a,
            "NAME_A": "Alice",
            "USER_A": str(alice),
            "TOKEN_D": token_d,
            "NAME_D": "Dave",
            "USER_D": str(dave),
            "GROUP_ID": str(group.id),
            "SCREENSHOT_DIR": str(SCREENSHOTS),
            "FAILURE_DIR": str(tmp_path / "failures"),
        },
    )
    for shot in ("14-phone-390-chat", "15-phone-390-groups", "16-desktop-1280", "17-embed-1280"):
        assert (SCREENSHOTS / f"{shot}.png").stat().st_size > 1000
