"""The user directory (ChatBackend.UpsertUsers / DeleteUser) through the real API."""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc
import pytest

from chat_service.gen import chat_backend_pb2 as bpb
from tests.conftest import UserFactory
from tests.support.backend import BackendClient, backend  # noqa: F401 - fixture
from tests.support.chat_client import expect_status

# ruff: noqa: F811 - the `backend` fixture is imported above

BAD = grpc.StatusCode.INVALID_ARGUMENT


async def test_members_show_synced_names_before_they_ever_connect(
    backend: BackendClient, user: UserFactory, new_user_id: Callable[[], int]
) -> None:
    owner = user("Owner")
    never_connected = new_user_id()
    changed = await backend.upsert(
        bpb.BackendUser(id=never_connected, name="Grace Hopper",
                        avatar="https://example.com/g.png", custom_json='{"team": "navy"}'),
    )
    assert changed == [never_connected]
    group = await owner.create_group()
    await owner.join(group.id, never_connected)
    members = {m.id: m for m in await owner.members(group.id)}
    assert members[never_connected].name == "Grace Hopper"
    assert members[never_connected].avatar == "https://example.com/g.png"
    history = (await owner.history(group.id)).messages
    assert "Grace Hopper" in history[-1].content  # "Owner added Grace Hopper"


async def test_profile_changes_reach_members_sharing_a_group_as_user_updated(
    backend: BackendClient, user: UserFactory
) -> None:
    alice, bob, outsider = user("Alice"), user("Bob"), user("Outsider")
    group = await alice.create_group(members=[bob.user_id])
    await outsider.create_group()
    bob_feed = await bob.subscribe()
    outsider_feed = await outsider.subscribe()
    custom = {"title": "CTO", "emoji": "🚀"}
    await backend.upsert(bpb.BackendUser(id=alice.user_id, name="Alice Liddell",
                                         custom_json=json.dumps(custom)))
    await bob_feed.wait_until(lambda: bool(bob_feed.of_kind("user_updated")))
    updated = bob_feed.of_kind("user_updated")[0].user_updated.user
    assert (updated.id, updated.name) == (alice.user_id, "Alice Liddell")
    assert json.loads(updated.custom_json) == custom
    assert updated.email == ""  # never broadcast
    # The same upsert again changes nothing and tells nobody.
    assert await backend.upsert(bpb.BackendUser(id=alice.user_id, name="Alice Liddell",
                                                custom_json=json.dumps(custom))) == []
    await alice.send(group.id, "after the rename")
    await bob_feed.wait_messages(1, group.id)
    assert len(bob_feed.of_kind("user_updated")) == 1
    assert outsider_feed.of_kind("user_updated") == []
    members = {m.id: m.name for m in await bob.members(group.id)}
    assert members[alice.user_id] == "Alice Liddell"


async def test_synced_profiles_win_over_token_claims_and_claims_work_without_sync(
    backend: BackendClient, user: UserFactory
) -> None:
    synced, unsynced = user("Claimed Name"), user("Token Name")
    group = await synced.create_group(members=[unsynced.user_id])
    await unsynced.my_groups()  # the service learns the claim name
    await backend.upsert(bpb.BackendUser(id=synced.user_id, name="Directory Name"))
    await synced.my_groups()  # a call with the old claims after the sync
    names = {m.id: m.name for m in await unsynced.members(group.id)}
    assert names == {synced.user_id: "Directory Name", unsynced.user_id: "Token Name"}


@pytest.mark.parametrize(("users", "complaint"), [
    ([], "must not be empty"),
    ([bpb.BackendUser(id=i + 1, name="x") for i in range(101)], "at most 100"),
    ([bpb.BackendUser(id=0, name="zero")], "positive"),
    ([bpb.BackendUser(id=5, name="a"), bpb.BackendUser(id=5, name="b")], "twice"),
    ([bpb.BackendUser(id=5, name="n" * 101)], "the limit is 100"),
    ([bpb.BackendUser(id=5, avatar="javascript:alert(1)")], "http(s) URL"),
    ([bpb.BackendUser(id=5, email="not an address")], "plausible"),
    ([bpb.BackendUser(id=5, custom_json="[1, 2]")], "JSON object"),
    ([bpb.BackendUser(id=5, custom_json="{oops")], "not valid JSON"),
    ([bpb.BackendUser(id=5, custom_json=json.dumps({"k": "v" * 4100}))], "the limit is 4096"),
])
async def test_upsert_bounds(backend: BackendClient, users: list[bpb.BackendUser],
                             complaint: str) -> None:
    error = await expect_status(BAD, backend.upsert(*users))
    assert complaint in (error.details() or "")


async def test_a_batch_of_100_is_accepted(
    backend: BackendClient, new_user_id: Callable[[], int]
) -> None:
    users = [bpb.BackendUser(id=new_user_id(), name=f"Bulk {i}") for i in range(100)]
    assert len(await backend.upsert(*users)) == 100


async def test_delete_user_anonymises_and_leaves_every_group(
    backend: BackendClient, user: UserFactory
) -> None:
    alice, bob = user("Alice"), user("Bob")
    g1 = await alice.create_group(members=[bob.user_id])
    g2 = await alice.create_group(members=[bob.user_id])
    sent = await bob.send(g1.id, "I was here")
    alice_feed = await alice.subscribe()
    result = await backend.call("DeleteUser", bpb.BackendUserRef(user_id=bob.user_id))
    assert result.groups_left == 2
    await alice_feed.wait_until(lambda: len(alice_feed.of_kind("member")) >= 2)
    assert {e.member.user.name for e in alice_feed.of_kind("member")} == {"Deleted user"}
    assert alice_feed.of_kind("user_updated")[0].user_updated.user.name == "Deleted user"
    for g in (g1, g2):
        assert [m.id for m in await alice.members(g.id)] == [alice.user_id]
    history = (await alice.history(g1.id)).messages
    kept = next(m for m in history if m.id == sent.id)
    assert (kept.content, kept.user_name) == ("I was here", "Deleted user")
    assert history[-1].content == "Deleted user left"
    # Their old token still works (DeleteUser is not a ban) but their claims do not rename them.
    await bob.my_groups()
    names = {m.id: m.name for m in await alice.members(g1.id)}
    assert bob.user_id not in names
    assert (await bob.my_groups()) == []
