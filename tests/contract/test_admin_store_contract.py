"""The issue-15 storage ports (DirectoryStore, GroupAdminStore, DirectStore, ModerationStore,
ErasureStore), one body over the memory twin and PostgreSQL.

What the domain relies on: synced profiles win over claims and report what changed; an
archived group and a muted member cannot post (PermissionDenied), a non-member still gets
None; backend posts are SYSTEM messages of user 0 stored once per key; one direct
conversation per pair, whatever the order or concurrency, that nobody can be added to; a
banned user cannot be added until the ban is lifted or lapses; the log is newest first and
paged; erasure tombstones with new update_seqs, removes reactions and is idempotent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from chat_service.domain.errors import PermissionDenied
from chat_service.domain.models import (
    ActionKind,
    Group,
    GroupChanges,
    MessageKind,
    PostResult,
    UserProfile,
)
from chat_service.domain.ports import AdminRepository, MessageChangeStore
from chat_service.storage.memory import MemoryAdminRepository, MemoryMessageChanges
from chat_service.storage.postgres.changes import PostgresMessageChanges
from chat_service.storage.postgres.repository import PostgresChatRepository
from tests.contract import twins
from tests.contract.conftest import PostgresDb


@dataclass
class AdminRig:
    twin: str
    repo: AdminRepository
    changes: MessageChangeStore

    async def user(self, name: str = "") -> UserProfile:
        uid = twins.new_user_id()
        profile = UserProfile(uid, name or f"user{uid}")
        await self.repo.upsert_user(profile)
        return profile

    async def group(self, owner: UserProfile, *members: UserProfile) -> Group:
        group, _ = await self.repo.create_group(
            name="Team", description="", creator=owner, member_ids=[m.id for m in members],
            invite_only=False)
        return group

    async def post(self, group_id: int, sender: UserProfile, text: str = "hi"
                   ) -> PostResult | None:
        return await self.repo.post_message(group_id=group_id, sender=sender, content=text,
                                            kind=MessageKind.TEXT, client_msg_id="")


@pytest.fixture(params=twins.STORES)
async def admin(request: pytest.FixtureRequest) -> AsyncIterator[AdminRig]:
    if request.param == "memory":
        memory = MemoryAdminRepository()
        yield AdminRig("memory", memory, MemoryMessageChanges(memory.state))
        return
    db: PostgresDb = request.getfixturevalue("postgres_db")
    pool = await db.connect()
    yield AdminRig("postgres", PostgresChatRepository(pool, batch_sends=False),
                   PostgresMessageChanges(pool))


async def test_synced_profiles_report_changes_and_win_over_claims(admin: AdminRig) -> None:
    ann = await admin.user("Ann (claims)")
    fresh = twins.new_user_id()
    synced = [UserProfile(ann.id, "Ann", "ann@example.com", custom_json='{"a":1}'),
              UserProfile(fresh, "Fresh")]
    assert await admin.repo.upsert_directory(synced) == sorted([ann.id, fresh])
    assert await admin.repo.upsert_directory(synced) == []
    await admin.repo.upsert_user(UserProfile(ann.id, "Claimed again"))
    profile = await admin.repo.profile_of(ann.id)
    assert (profile.name, profile.email, profile.custom_json) == ("Ann", "ann@example.com",
                                                                  '{"a":1}')
    await admin.repo.anonymise_user(ann.id, erased=True)
    assert (await admin.repo.profile_of(ann.id)).name == "Deleted user"
    assert (await admin.repo.banned_users())[ann.id] == 0
    assert await admin.repo.upsert_directory([UserProfile(ann.id, "Back?")]) == []


async def test_archived_groups_and_muted_members_cannot_post(admin: AdminRig) -> None:
    owner, member, outsider = await admin.user(), await admin.user(), await admin.user()
    group = await admin.group(owner, member)
    assert await admin.repo.update_group(group.id,
                                         GroupChanges(name="New", avatar="https://a.b/c"))
    shown = await admin.repo.get_group(group.id, owner.id)
    assert shown is not None and (shown.name, shown.avatar, shown.archived) == (
        "New", "https://a.b/c", False)
    assert await admin.post(group.id, outsider) is None
    assert await admin.repo.silence(group.id, member.id, 0)
    with pytest.raises(PermissionDenied, match="muted"):
        await admin.post(group.id, member)
    assert await admin.repo.silence(group.id, member.id, int(time.time() * 1000) - 1000)
    assert await admin.post(group.id, member) is not None  # the mute lapsed
    assert not await admin.repo.silence(group.id, outsider.id, 0)
    posted = await admin.post(group.id, owner, "before the archive")
    assert posted is not None
    await admin.repo.update_group(group.id, GroupChanges(archived=True))
    with pytest.raises(PermissionDenied, match="archived"):
        await admin.post(group.id, owner)
    with pytest.raises(PermissionDenied, match="archived"):  # edits, deletes, reactions too
        await admin.changes.edit(posted.message, "changed", ())
    with pytest.raises(PermissionDenied, match="archived"):
        await admin.changes.react(posted.message, member.id, "👍", True, 20)
    stored = await admin.repo.get_message(posted.message.id)
    assert stored is not None and (stored.content, stored.reactions) == ("before the archive", ())
    assert await admin.repo.post_from_backend(group.id, "notice", "") is None
    await admin.repo.update_group(group.id, GroupChanges(archived=False))
    assert await admin.post(group.id, owner) is not None
    assert not await admin.repo.update_group(2**62, GroupChanges(name="x"))


async def test_backend_posts_are_system_messages_stored_once_per_key(admin: AdminRig) -> None:
    owner = await admin.user()
    group = await admin.group(owner)
    first = await admin.repo.post_from_backend(group.id, "maintenance", "k1")
    again = await admin.repo.post_from_backend(group.id, "maintenance", "k1")
    assert first is not None and again is not None
    assert (again.message.id, again.duplicate, first.duplicate) == (first.message.id, True,
                                                                    False)
    m = first.message
    assert (m.kind, m.sender.id, m.via_backend, m.seq) == (MessageKind.SYSTEM, 0, True, 2)
    stored = await admin.repo.get_message(m.id)
    assert stored is not None and stored.via_backend
    assert await admin.repo.post_from_backend(2**62, "nowhere", "") is None


async def test_one_direct_conversation_per_pair_that_nobody_joins(admin: AdminRig) -> None:
    ann, ben, eve = await admin.user("Ann"), await admin.user("Ben"), await admin.user()
    results = await asyncio.gather(
        *(admin.repo.get_or_create_direct(a, b.id) for a, b in ((ann, ben), (ben, ann)) * 5))
    assert len({gid for gid, _ in results}) == 1
    assert sum(1 for _, first in results if first is not None) == 1
    gid = results[0][0]
    assert await admin.repo.find_direct(ben.id, ann.id) == gid
    shown = await admin.repo.get_group(gid, ann.id)
    assert shown is not None and shown.direct and shown.invite_only
    assert shown.direct_peer is not None and shown.direct_peer.name == "Ben"
    with pytest.raises(PermissionDenied):
        await admin.repo.add_member(gid, eve.id, ann, 1000)


async def test_a_banned_user_cannot_be_added_until_lifted_or_lapsed(admin: AdminRig) -> None:
    owner, troll = await admin.user(), await admin.user()
    group = await admin.group(owner)
    await admin.repo.ban_from_group(group.id, troll.id, 0, "spam")
    with pytest.raises(PermissionDenied, match="banned"):
        await admin.repo.add_member(group.id, troll.id, owner, 1000)
    assert await admin.repo.unban_from_group(group.id, troll.id)
    assert not await admin.repo.unban_from_group(group.id, troll.id)
    await admin.repo.ban_from_group(group.id, troll.id, int(time.time() * 1000) - 1, "")
    assert (await admin.repo.add_member(group.id, troll.id, owner, 1000)).changed


async def test_the_log_is_newest_first_and_paged(admin: AdminRig) -> None:
    owner, member = await admin.user(), await admin.user()
    group = await admin.group(owner, member)
    made = [await admin.repo.record_action(group_id=group.id, user_id=member.id,
                                           actor_id=owner.id, kind=kind, reason=f"r{i}")
            for i, kind in enumerate((ActionKind.MUTE, ActionKind.UNMUTE, ActionKind.BAN))]
    page, more = await admin.repo.list_actions(group.id, 0, 2)
    assert [a.id for a in page] == [made[2].id, made[1].id] and more
    rest, more = await admin.repo.list_actions(group.id, page[-1].id, 2)
    assert [a.id for a in rest] == [made[0].id] and not more
    assert (rest[0].kind, rest[0].reason, rest[0].expires_at_ms) == (ActionKind.MUTE, "r0", 0)


async def test_service_bans_are_listed_until_they_lapse_or_are_lifted(admin: AdminRig) -> None:
    a, b, c = await admin.user(), await admin.user(), await admin.user()
    later = int(time.time() * 1000) + 60_000
    await admin.repo.set_user_ban(a.id, 0, "for good")
    await admin.repo.set_user_ban(b.id, later, "a minute")
    await admin.repo.set_user_ban(c.id, int(time.time() * 1000) - 1, "lapsed")
    bans = await admin.repo.banned_users()
    assert bans[a.id] == 0 and abs(bans[b.id] - later) < 2 and c.id not in bans
    await admin.repo.set_user_ban(a.id, None, "")
    assert a.id not in await admin.repo.banned_users()


async def test_erasure_tombstones_with_new_update_seqs_and_is_idempotent(admin: AdminRig
                                                                        ) -> None:
    owner, bob = await admin.user("Owner"), await admin.user("Bob")
    group = await admin.group(owner, bob)
    theirs = await admin.post(group.id, owner, "owner's")
    assert theirs is not None
    for i in range(3):
        await admin.post(group.id, bob, f"bob {i}")
    await admin.changes.react(theirs.message, bob.id, "👍", True, 20)
    before = await admin.repo.get_group(group.id, owner.id)
    assert before is not None
    erased = await admin.repo.erase_user_content(bob.id, tombstone=True)
    again = await admin.repo.erase_user_content(bob.id, tombstone=True)
    assert (again.messages, again.changed_ids) == (0, ())
    page = await admin.repo.history(group.id, 0, 50)
    assert [m.seq for m in page.messages] == list(range(1, len(page.messages) + 1))
    bobs = [m for m in page.messages if m.sender.id == bob.id]
    # Every message that took a new update_seq is named: his tombstones and the owner's.
    assert erased.messages == 3
    assert sorted(erased.changed_ids) == sorted([m.id for m in bobs] + [theirs.message.id])
    assert len(bobs) == 3 and all(m.deleted and m.content == "" for m in bobs)
    assert sorted(m.update_seq for m in bobs) == [before.last_update_seq + i for i in (1, 2, 3)]
    owners = next(m for m in page.messages if m.id == theirs.message.id)
    assert (owners.reactions, owners.update_seq) == ((), before.last_update_seq + 4)
    exported = await admin.repo.export_messages(bob.id, 0, 10)
    assert [r["type"] for r in exported] == ["message"] * 3
    assert any(r["type"] == "membership" for r in await admin.repo.export_records(bob.id))


async def test_deleting_a_group_removes_it_and_its_log(admin: AdminRig) -> None:
    owner = await admin.user()
    group = await admin.group(owner)
    await admin.repo.record_action(group_id=group.id, user_id=owner.id, actor_id=0,
                                   kind=ActionKind.MUTE, reason="")
    assert await admin.repo.delete_group(group.id)
    assert await admin.repo.get_group(group.id, owner.id) is None
    assert await admin.repo.list_actions(group.id, 0, 10) == ([], False)
    assert not await admin.repo.delete_group(group.id)


async def test_erasure_in_anonymise_mode_keeps_the_messages(admin: AdminRig) -> None:
    owner, bob = await admin.user("Owner"), await admin.user("Bob")
    group = await admin.group(owner, bob)
    await admin.post(group.id, bob, "kept under an anonymous name")
    erased = await admin.repo.erase_user_content(bob.id, tombstone=False)
    assert (erased.messages, erased.changed_ids) == (1, ())  # nothing changed but the name
    page = await admin.repo.history(group.id, 0, 50)
    kept = [m for m in page.messages if m.sender.id == bob.id]
    assert [(m.content, m.deleted) for m in kept] == [("kept under an anonymous name", False)]


async def test_erasure_unpins_and_takes_the_text_out_of_search(admin: AdminRig) -> None:
    owner, bob = await admin.user("Owner"), await admin.user("Bob")
    group = await admin.group(owner, bob)
    sent = await admin.post(group.id, bob, "an erasable quokka")
    assert sent is not None
    await admin.repo.set_pin(sent.message, owner.id, True, 50)
    assert [h.message.id for h in await admin.repo.search(owner.id, 0, "quokka", 10, 0, 100)
            ] == [sent.message.id]
    await admin.repo.erase_user_content(bob.id, tombstone=True)
    assert await admin.repo.pinned(group.id, owner.id) == []
    assert await admin.repo.search(owner.id, 0, "quokka", 10, 0, 100) == []
