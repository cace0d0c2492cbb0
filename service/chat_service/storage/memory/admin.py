"""The issue-15 stores in memory (directory, group administration, direct conversations,
moderation, erasure), as PostgreSQL's directory.py, admin.py, direct.py, moderation.py and
erasure.py; `MemoryAdminRepository` is the whole `AdminRepository`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from chat_service.domain.models import (
    BACKEND_ACTOR,
    ActionKind,
    ErasedContent,
    GroupChanges,
    Message,
    MessageKind,
    ModerationAction,
    PostResult,
    Role,
    UserProfile,
)
from chat_service.domain.system_text import DELETED_USER, direct_started
from chat_service.storage.memory.repository import MemoryChatRepository
from chat_service.storage.memory.state import GroupRow, MemberRow, MessageRow, now_ms


class MemoryAdminRepository(MemoryChatRepository):
    # ---- directory (directory.py) ----

    async def upsert_directory(self, users: Sequence[UserProfile]) -> list[int]:
        changed: list[int] = []
        for u in users:
            known = u.id in self.state.users
            row = self.state.user(u.id)
            if row.erased:
                continue
            before = (row.name, row.email, row.avatar, row.custom_json, row.directory,
                      row.deleted)
            row.name, row.email, row.avatar, row.custom_json = (u.name, u.email, u.avatar,
                                                                u.custom_json)
            row.directory, row.deleted = True, False
            if not known or before != (u.name, u.email, u.avatar, u.custom_json, True, False):
                changed.append(u.id)
        return sorted(changed)

    async def profile_of(self, user_id: int) -> UserProfile:
        row = self.state.users.get(user_id)
        if row is None:
            return UserProfile(user_id)
        return replace(row.profile(), custom_json=row.custom_json)

    async def anonymise_user(self, user_id: int, *, erased: bool) -> None:
        row = self.state.user(user_id)
        row.name, row.email, row.avatar, row.custom_json = DELETED_USER, "", "", ""
        row.directory = row.deleted = row.private_receipts = True
        row.erased = row.erased or erased

    # ---- group administration (admin.py) ----

    async def update_group(self, group_id: int, changes: GroupChanges) -> bool:
        group = self.state.groups.get(group_id)
        if group is None:
            return False
        group.name = group.name if changes.name is None else changes.name
        group.description = (group.description if changes.description is None
                             else changes.description)
        group.avatar = group.avatar if changes.avatar is None else changes.avatar
        if changes.invite_only is not None:
            group.invite_only = changes.invite_only
        if changes.archived is not None:
            group.archived = changes.archived
        return True

    async def group_attachment_ids(self, group_id: int) -> list[str]:
        return [a for a, row in self.state.attachments.items() if row.group_id == group_id]

    async def delete_group(self, group_id: int) -> bool:
        state = self.state
        if state.groups.pop(group_id, None) is None:
            return False
        for row in state.by_group.pop(group_id, []):
            state.messages.pop(row.id, None)
        for attachment_id in await self.group_attachment_ids(group_id):
            del state.attachments[attachment_id]
        state.group_bans = {k: v for k, v in state.group_bans.items() if k[0] != group_id}
        state.actions = [a for a in state.actions if a.group_id != group_id]
        return True

    async def post_from_backend(
        self, group_id: int, content: str, client_msg_id: str
    ) -> PostResult | None:
        if client_msg_id:
            for row in self.state.by_group.get(group_id, ()):
                if row.user_id == 0 and row.client_msg_id == client_msg_id:
                    return PostResult(self._system(row), duplicate=True)
        group = self.state.groups.get(group_id)
        if group is None or group.archived:
            return None
        group.last_seq += 1
        row = self.state.insert(MessageRow(
            self.state.next_id(), group_id, group.last_seq, 0, MessageKind.SYSTEM, content,
            now_ms(), client_msg_id=client_msg_id, via_backend=True,
        ))
        return PostResult(self._system(row), duplicate=False)

    def _system(self, row: MessageRow) -> Message:
        return replace(self.state.show(row), sender=BACKEND_ACTOR)

    # ---- direct conversations (direct.py) ----

    async def find_direct(self, user_a: int, user_b: int) -> int | None:
        low, high = sorted((user_a, user_b))
        return self.state.directs.get((low, high))

    async def get_or_create_direct(
        self, caller: UserProfile, other_id: int
    ) -> tuple[int, Message | None]:
        pair = (min(caller.id, other_id), max(caller.id, other_id))
        found = self.state.directs.get(pair)
        if found is not None:
            return found, None
        group = GroupRow(self.state.next_id(), "", "", caller.id, True, now_ms(), direct=pair)
        self.state.groups[group.id] = group
        self.state.directs[pair] = group.id
        tick, joined = self.state.tick(), now_ms()
        for uid in pair:
            self.state.user(uid)
            group.members[uid] = MemberRow(Role.MEMBER, tick, joined)
        first = self.state.system(group, caller, direct_started(caller))
        return group.id, self.state.show(first)

    # ---- moderation (moderation.py) ----

    async def ban_from_group(self, group_id: int, user_id: int, until_ms: int, reason: str
                             ) -> None:
        self.state.group_bans[(group_id, user_id)] = (until_ms, reason)

    async def unban_from_group(self, group_id: int, user_id: int) -> bool:
        return self.state.group_bans.pop((group_id, user_id), None) is not None

    async def silence(self, group_id: int, user_id: int, until_ms: int | None) -> bool:
        group = self.state.groups.get(group_id)
        member = None if group is None else group.members.get(user_id)
        if member is None:
            return False
        member.silenced_until_ms = until_ms
        return True

    async def record_action(
        self, *, group_id: int, user_id: int, actor_id: int, kind: ActionKind, reason: str,
        expires_at_ms: int = 0, message_id: int = 0,
    ) -> ModerationAction:
        action = ModerationAction(self.state.next_id(), group_id, user_id, actor_id, kind,
                                  reason, expires_at_ms, now_ms(), message_id)
        self.state.actions.append(action)
        return action

    async def list_actions(
        self, group_id: int, before_id: int, limit: int
    ) -> tuple[list[ModerationAction], bool]:
        found = [a for a in reversed(self.state.actions)
                 if a.group_id == group_id and (before_id == 0 or a.id < before_id)]
        return found[:limit], len(found) > limit

    async def set_user_ban(self, user_id: int, until_ms: int | None, reason: str) -> None:
        self.state.user(user_id).banned_until_ms = until_ms

    async def banned_users(self) -> dict[int, int]:
        now = now_ms()
        out: dict[int, int] = {}
        for uid, row in self.state.users.items():
            if row.erased:
                out[uid] = 0
            elif row.banned_until_ms is not None and (
                row.banned_until_ms == 0 or row.banned_until_ms > now
            ):
                out[uid] = row.banned_until_ms
        return out

    # ---- erasure (erasure.py) ----

    async def attachment_ids_of_user(self, user_id: int) -> list[str]:
        return [a for a, row in self.state.attachments.items() if row.owner_id == user_id]

    async def erase_user_content(self, user_id: int, *, tombstone: bool) -> ErasedContent:
        state = self.state
        mine = [m for m in state.messages.values()
                if m.user_id == user_id and not m.deleted and m.kind != MessageKind.SYSTEM]
        changed: list[int] = []
        if tombstone:
            for row in sorted(mine, key=lambda m: (m.group_id, m.seq)):
                row.content, row.mentions, row.attachment_id = "", (), ""
                row.deleted = True
                row.pinned_by = row.pinned_at_ms = row.pin_tick = 0
                row.reactions.clear()
                state.bump_update(row)
                changed.append(row.id)
        reacted = [m for m in state.messages.values()
                   if not m.deleted and any(u == user_id for u, _ in m.reactions)]
        for row in sorted(reacted, key=lambda m: (m.group_id, m.seq)):
            row.reactions = [(u, e) for u, e in row.reactions if u != user_id]
            state.bump_update(row)
            changed.append(row.id)
        for row in state.messages.values():
            row.reactions = [(u, e) for u, e in row.reactions if u != user_id]
            row.mentions = tuple(m for m in row.mentions if m.user_id != user_id)
        state.group_bans = {k: v for k, v in state.group_bans.items() if k[1] != user_id}
        return ErasedContent(len(mine), tuple(changed))

    async def export_records(self, user_id: int) -> list[dict[str, Any]]:
        state = self.state
        out: list[dict[str, Any]] = []
        row = state.users.get(user_id)
        if row is not None:
            out.append({"type": "profile", "id": user_id, "name": row.name, "email": row.email,
                        "avatar": row.avatar,
                        "custom": json.loads(row.custom_json) if row.custom_json else None})
        for gid, group in sorted(state.groups.items()):
            member = group.members.get(user_id)
            if member is not None:
                out.append({"type": "membership", "group_id": gid, "role": int(member.role),
                            "read_seq": member.read_seq})
        for m in sorted(state.messages.values(), key=lambda m: m.id):
            out.extend({"type": "reaction", "message_id": m.id, "emoji": e}
                       for u, e in m.reactions if u == user_id)
        out.extend({"type": "attachment", "id": a, "group_id": r.group_id}
                   for a, r in state.attachments.items() if r.owner_id == user_id)
        out.extend({"type": "moderation", "id": a.id, "group_id": a.group_id,
                    "kind": int(a.kind), "reason": a.reason}
                   for a in state.actions if user_id in (a.user_id, a.actor_id))
        return out

    async def export_messages(
        self, user_id: int, after_id: int, limit: int
    ) -> list[dict[str, Any]]:
        rows = sorted((m for m in self.state.messages.values()
                       if m.user_id == user_id and m.id > after_id), key=lambda m: m.id)
        return [{"type": "message", "id": m.id, "group_id": m.group_id, "seq": m.seq,
                 "content": m.content} for m in rows[:limit]]
