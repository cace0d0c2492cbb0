"""Users, groups, membership and messages in memory: `ChatRepository`, as PostgreSQL's
repository.py composes it (members.py, groups.py, messages.py)."""

from __future__ import annotations

from collections.abc import Sequence

from chat_service.domain.conversation import ThreadLink
from chat_service.domain.errors import InvalidArgument, NotFound, PermissionDenied
from chat_service.domain.models import (
    Group,
    GroupHead,
    HistoryPage,
    Member,
    MemberChange,
    MembershipResult,
    Mention,
    Message,
    MessageKind,
    PostResult,
    Role,
    UserProfile,
)
from chat_service.domain.system_text import group_created, membership_changed
from chat_service.storage.memory.conversation import MemoryConversation
from chat_service.storage.memory.state import (
    GroupRow,
    MemberRow,
    MemoryState,
    MessageRow,
    now_ms,
)


class MemoryChatRepository(MemoryConversation):
    def __init__(self, state: MemoryState | None = None) -> None:
        self.state = state if state is not None else MemoryState()

    def _group(self, group_id: int) -> GroupRow:
        group = self.state.groups.get(group_id)
        if group is None:
            raise NotFound(f"group {group_id} does not exist")
        return group

    # ---- users and membership (members.py) ----

    async def upsert_user(self, user: UserProfile) -> None:
        row = self.state.user(user.id)
        if row.directory:  # synced by the backend: claims ignored
            return
        row.name = user.name or row.name
        row.email = user.email or row.email
        row.avatar = user.avatar or row.avatar

    async def role_of(self, group_id: int, user_id: int) -> Role:
        group = self.state.groups.get(group_id)
        member = None if group is None else group.members.get(user_id)
        return Role.NONE if member is None else member.role

    def _record_change(
        self, group: GroupRow, user_id: int, actor: UserProfile, by_self: bool,
        verbs: tuple[str, str],
    ) -> Message:
        name = self.state.user(user_id).name
        text = membership_changed(name, user_id, actor, by_self, verbs)
        return self.state.show(self.state.system(group, actor, text))

    async def add_member(
        self, group_id: int, user_id: int, actor: UserProfile, max_members: int
    ) -> MembershipResult:
        self.state.user(user_id)
        group = self._group(group_id)
        if group.direct is not None:
            raise PermissionDenied("a direct conversation has exactly its two users")
        if self.state.banned(group_id, user_id):
            raise PermissionDenied(f"user {user_id} is banned from group {group_id}")
        if user_id in group.members:
            return MembershipResult(changed=False, message=None)
        if len(group.members) >= max_members:
            raise InvalidArgument(f"group {group_id} is full ({max_members} members max)")
        group.members[user_id] = MemberRow(Role.MEMBER, self.state.tick(), now_ms())
        message = self._record_change(
            group, user_id, actor, user_id == actor.id, ("joined", "added")
        )
        return MembershipResult(changed=True, message=message)

    async def remove_member(
        self, group_id: int, user_id: int, actor: UserProfile, change: MemberChange
    ) -> MembershipResult:
        group = self._group(group_id)
        gone = group.members.pop(user_id, None)
        if gone is None:
            return MembershipResult(changed=False, message=None)
        if gone.role == Role.OWNER and group.members:
            # Hand the group to the longest-standing admin, else the oldest member.
            heir = min(group.members.items(), key=lambda kv: (-kv[1].role, kv[1].joined, kv[0]))
            heir[1].role = Role.OWNER
        message = self._record_change(
            group, user_id, actor, change == MemberChange.LEFT, ("left", "removed")
        )
        return MembershipResult(changed=True, message=message)

    def _member(self, user_id: int, row: MemberRow) -> Member:
        return Member(self.state.profile(user_id), row.role, row.joined_at_ms)

    async def list_members(self, group_id: int) -> list[Member]:
        group = self.state.groups.get(group_id)
        if group is None:
            return []
        ordered = sorted(group.ordered_members(), key=lambda kv: -kv[1].role)  # stable
        return [self._member(u, row) for u, row in ordered]

    async def member_ids(self, group_id: int) -> list[int]:
        group = self.state.groups.get(group_id)
        return [] if group is None else list(group.members)

    async def member_names(self, group_id: int) -> list[tuple[int, str]]:
        group = self.state.groups.get(group_id)
        if group is None:
            return []
        return [(u, self.state.profile(u).name) for u in group.members]

    async def set_role(self, group_id: int, user_id: int, role: Role) -> Member | None:
        group = self.state.groups.get(group_id)
        row = None if group is None else group.members.get(user_id)
        if row is None or row.role == Role.OWNER:
            return None
        row.role = role
        return self._member(user_id, row)

    # ---- groups (groups.py) ----

    async def create_group(
        self,
        *,
        name: str,
        description: str,
        creator: UserProfile,
        member_ids: Sequence[int],
        invite_only: bool,
    ) -> tuple[Group, Message]:
        others = [m for m in member_ids if m != creator.id]
        group = GroupRow(self.state.next_id(), name, description, creator.id, invite_only,
                         now_ms())
        self.state.groups[group.id] = group
        tick, joined_ms = self.state.tick(), now_ms()
        for uid in [creator.id, *others]:
            self.state.user(uid)
            group.members[uid] = MemberRow(
                Role.OWNER if uid == creator.id else Role.MEMBER, tick, joined_ms
            )
        created = self.state.system(
            group, creator, group_created(creator, name)
        )
        shown = self.state.show_group(group, creator.id, with_members=True)
        return shown, self.state.show(created)

    async def get_group(self, group_id: int, viewer_id: int) -> Group | None:
        group = self.state.groups.get(group_id)
        return None if group is None else self.state.show_group(group, viewer_id, True)

    def _groups_of(self, user_id: int) -> list[GroupRow]:
        return [g for _, g in sorted(self.state.groups.items()) if user_id in g.members]

    async def list_groups_for_user(self, user_id: int) -> list[Group]:
        return [self.state.show_group(g, user_id, False) for g in self._groups_of(user_id)]

    async def group_ids_for_user(self, user_id: int) -> list[int]:
        return [g.id for g in self._groups_of(user_id)]

    async def heads_for_user(self, user_id: int) -> dict[int, GroupHead]:
        return {g.id: GroupHead(g.last_seq, g.last_update_seq) for g in self._groups_of(user_id)}

    async def group_heads(self, group_ids: Sequence[int]) -> dict[int, int]:
        groups = self.state.groups
        return {g: groups[g].last_seq for g in group_ids if g in groups}

    # ---- messages (messages.py) ----

    async def post_message(
        self,
        *,
        group_id: int,
        sender: UserProfile,
        content: str,
        kind: MessageKind,
        client_msg_id: str,
        reply_to_id: int = 0,
        mentions: Sequence[Mention] = (),
        attachment_id: str = "",
        via_backend: bool = False,
        thread: ThreadLink | None = None,
    ) -> PostResult | None:
        group = self.state.groups.get(group_id)
        if client_msg_id:
            # Also for a sender no longer a member: their retry is answered, not refused.
            for row in self.state.by_group.get(group_id, ()):
                if row.user_id == sender.id and row.client_msg_id == client_msg_id:
                    return PostResult(self.state.show(row), duplicate=True)
        if group is None or sender.id not in group.members:
            return None
        if group.archived:
            raise PermissionDenied(f"group {group_id} is archived: it is read-only")
        until = group.members[sender.id].silenced_until_ms
        if until is not None and (until == 0 or until > now_ms()):
            raise PermissionDenied(f"you are muted in group {group_id}")
        upload = self.state.attachments.get(attachment_id) if attachment_id else None
        if attachment_id and any(m.attachment_id == attachment_id
                                 for m in self.state.messages.values()):
            raise InvalidArgument(
                f"attachment {attachment_id} was already sent in another message"
            )
        group.last_seq += 1
        row = self.state.insert(MessageRow(
            self.state.next_id(), group_id, group.last_seq, sender.id, kind, content, now_ms(),
            client_msg_id=client_msg_id, reply_to_id=reply_to_id, mentions=tuple(mentions),
            attachment_id=attachment_id, via_backend=via_backend,
            thread_parent_id=thread.parent_id if thread else 0,
            also_in_group=bool(thread and thread.also_in_group),
        ))
        if thread is not None:
            self._thread_replied(thread, row)
        if upload is not None and (upload.owner_id, upload.group_id) == (sender.id, group_id) \
                and upload.completed and not upload.message_id:
            upload.message_id = row.id
        return PostResult(self.state.show(row), duplicate=False)

    def _thread_replied(self, thread: ThreadLink, reply: MessageRow) -> None:
        """The parent's summary changes with the reply (as messages.py's `par` and `tp`)."""
        parent = self.state.messages.get(thread.parent_id)
        if parent is not None:
            parent.reply_count += 1
            parent.last_reply_at_ms = reply.created_at_ms
            self.state.bump_update(parent)
        who = self.state.participants.setdefault(thread.parent_id, {})
        who.setdefault(thread.parent_author, thread.parent_seq)
        who[reply.user_id] = max(who.get(reply.user_id, 0), reply.seq)

    async def get_message(self, message_id: int, viewer: int = 0) -> Message | None:
        row = self.state.messages.get(message_id)
        return None if row is None else self.state.show(row, viewer)

    async def history(
        self, group_id: int, before_id: int, limit: int, viewer: int = 0
    ) -> HistoryPage:
        before_seq = 2**63 - 1
        if before_id:
            anchor = self.state.messages.get(before_id)
            if anchor is None or anchor.group_id != group_id:
                raise NotFound(f"message {before_id} is not in group {group_id}")
            before_seq = anchor.seq
        older = [m for m in self.state.by_group.get(group_id, ())
                 if m.seq < before_seq and m.in_timeline]
        page = older[-limit:] if limit > 0 else []
        return HistoryPage([self.state.show(m, viewer) for m in page],
                           has_more=len(older) > len(page))

    async def messages_after(
        self, group_id: int, after_seq: int, upto_seq: int, limit: int
    ) -> list[Message]:
        rows = [m for m in self.state.by_group.get(group_id, ()) if after_seq < m.seq <= upto_seq]
        return [self.state.show(m) for m in rows[:limit]]

    async def updates_after(
        self, group_id: int, after_update_seq: int, upto_seq: int, limit: int, viewer: int
    ) -> list[Message]:
        """Messages up to `upto_seq` changed (edited, deleted, reacted to) since a position."""
        rows = sorted(
            (m for m in self.state.by_group.get(group_id, ())
             if m.update_seq > after_update_seq and m.seq <= upto_seq),
            key=lambda m: m.update_seq,
        )
        return [self.state.show(m, viewer) for m in rows[:limit]]

    async def mentions_of(self, user_id: int, before_id: int, limit: int) -> HistoryPage:
        """Messages mentioning the user by name or @all in groups they belong to."""
        found = sorted(
            (m for m in self.state.messages.values()
             if m.mentioned() & {user_id, 0} and m.user_id != user_id and not m.deleted
             and user_id in self.state.groups[m.group_id].members
             and (before_id == 0 or m.id < before_id)),
            key=lambda m: -m.id,
        )
        return HistoryPage([self.state.show(m, user_id) for m in found[:limit]],
                           has_more=len(found) > limit)

    async def attachment_usable(self, attachment_id: str, owner_id: int, group_id: int) -> bool:
        upload = self.state.attachments.get(attachment_id)
        return (upload is not None and upload.completed and not upload.message_id
                and (upload.owner_id, upload.group_id) == (owner_id, group_id))

    async def ping(self) -> None:
        return None
