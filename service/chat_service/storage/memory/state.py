"""The twin's tables, and the one place that turns rows into domain models (as rows.py does
for PostgreSQL)."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from chat_service.domain.models import (
    AttachmentInfo,
    Group,
    Mention,
    Message,
    MessageKind,
    ModerationAction,
    Quote,
    ReactionCount,
    Role,
    UserProfile,
)
from chat_service.domain.receipts import UNREAD_COUNT_MAX


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class UserRow:
    id: int
    name: str = ""
    email: str = ""
    avatar: str = ""
    private_receipts: bool = False
    custom_json: str = ""
    directory: bool = False  # synced by the backend: token claims ignored
    deleted: bool = False
    erased: bool = False
    banned_until_ms: int | None = None  # backend-wide ban; 0: for good

    def profile(self) -> UserProfile:
        return UserProfile(self.id, self.name, self.email, self.avatar)


@dataclass
class MemberRow:
    role: Role
    joined: int  # order of joining (one tick per change; a group's founders share one)
    joined_at_ms: int
    read_seq: int = 0
    muted: bool = False
    silenced_until_ms: int | None = None  # muted by a moderator; 0: until lifted


@dataclass
class GroupRow:
    id: int
    name: str
    description: str
    created_by: int
    invite_only: bool
    created_at_ms: int
    last_seq: int = 0
    last_update_seq: int = 0
    members: dict[int, MemberRow] = field(default_factory=dict)
    avatar: str = ""
    archived: bool = False
    direct: tuple[int, int] | None = None  # a 1:1 conversation: (lower id, higher id)

    def ordered_members(self) -> list[tuple[int, MemberRow]]:
        """In order of joining, then user id (PostgreSQL: joined_at, user_id)."""
        return sorted(self.members.items(), key=lambda kv: (kv[1].joined, kv[0]))


@dataclass
class MessageRow:
    id: int
    group_id: int
    seq: int
    user_id: int
    kind: MessageKind
    content: str
    created_at_ms: int
    client_msg_id: str = ""
    reply_to_id: int = 0
    mentions: tuple[Mention, ...] = ()
    attachment_id: str = ""
    edited_at_ms: int = 0
    deleted: bool = False
    update_seq: int = 0
    reactions: list[tuple[int, str]] = field(default_factory=list)  # (user, emoji), in order
    thread_parent_id: int = 0
    also_in_group: bool = False
    reply_count: int = 0
    last_reply_at_ms: int = 0
    pinned_by: int = 0
    pinned_at_ms: int = 0
    pin_tick: int = 0  # order of pinning (PostgreSQL: pinned_at)
    via_backend: bool = False

    def mentioned(self) -> set[int]:
        return {m.user_id for m in self.mentions}

    @property
    def in_timeline(self) -> bool:
        return not self.thread_parent_id or self.also_in_group


@dataclass
class AttachmentRow:
    info: AttachmentInfo
    owner_id: int
    group_id: int
    completed: bool = True
    message_id: int = 0


class MemoryState:
    """Everything the memory stores keep, shared by them."""

    def __init__(self) -> None:
        self.users: dict[int, UserRow] = {}
        self.groups: dict[int, GroupRow] = {}
        self.messages: dict[int, MessageRow] = {}
        self.by_group: dict[int, list[MessageRow]] = {}  # in seq order
        self.attachments: dict[str, AttachmentRow] = {}
        # parent id -> {participant: read_seq}, in order of joining (thread_participants)
        self.participants: dict[int, dict[int, int]] = {}
        # Issue 15: group bans (group, user) -> (until ms, 0: until lifted; reason), the
        # moderation log, direct conversations by pair.
        self.group_bans: dict[tuple[int, int], tuple[int, str]] = {}
        self.actions: list[ModerationAction] = []
        self.directs: dict[tuple[int, int], int] = {}
        self._ids = itertools.count(1)
        self._ticks = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def tick(self) -> int:
        return next(self._ticks)

    def user(self, user_id: int) -> UserRow:
        """The user's row, made empty on first mention (INSERT ... ON CONFLICT DO NOTHING)."""
        return self.users.setdefault(user_id, UserRow(user_id))

    def add_upload(
        self, info: AttachmentInfo, owner_id: int, group_id: int, *, completed: bool = True
    ) -> None:
        """A test's stand-in for the attachments service: a finished (or running) upload."""
        self.attachments[info.id] = AttachmentRow(info, owner_id, group_id, completed)

    def insert(self, row: MessageRow) -> MessageRow:
        self.messages[row.id] = row
        self.by_group.setdefault(row.group_id, []).append(row)
        return row

    def system(self, group: GroupRow, actor: UserProfile, text: str) -> MessageRow:
        """A SYSTEM message at the group's next seq."""
        group.last_seq += 1
        return self.insert(
            MessageRow(self.next_id(), group.id, group.last_seq, actor.id, MessageKind.SYSTEM,
                       text, now_ms())
        )

    def bump_update(self, row: MessageRow) -> None:
        group = self.groups[row.group_id]
        group.last_update_seq += 1
        row.update_seq = group.last_update_seq

    def profile(self, user_id: int) -> UserProfile:
        row = self.users.get(user_id)
        return row.profile() if row is not None else UserProfile(user_id)

    def show(self, row: MessageRow, viewer: int = 0) -> Message:
        """A message as `select_messages` shows it: sender, quote, reactions, attachment."""
        quote = None
        original = self.messages.get(row.reply_to_id) if row.reply_to_id else None
        if original is not None:
            quote = Quote(
                id=original.id,
                user_id=original.user_id,
                user_name=self.profile(original.user_id).name,
                content="" if original.deleted else original.content[:120],
                deleted=original.deleted,
            )
        counts: dict[str, ReactionCount] = {}
        for user_id, emoji in row.reactions:
            was = counts.get(emoji, ReactionCount(emoji, 0))
            counts[emoji] = ReactionCount(emoji, was.count + 1, was.mine or user_id == viewer)
        upload = self.attachments.get(row.attachment_id) if row.attachment_id else None
        return Message(
            id=row.id,
            group_id=row.group_id,
            seq=row.seq,
            sender=self.profile(row.user_id),
            content=row.content,
            kind=row.kind,
            created_at_ms=row.created_at_ms,
            client_msg_id=row.client_msg_id,
            mentions=row.mentions,
            reactions=tuple(counts.values()),
            reply_to_id=row.reply_to_id,
            reply_quote=quote,
            edited_at_ms=row.edited_at_ms,
            deleted=row.deleted,
            attachment=None if upload is None else upload.info,
            update_seq=row.update_seq,
            thread_parent_id=row.thread_parent_id,
            also_in_group=row.also_in_group,
            reply_count=row.reply_count,
            last_reply_at_ms=row.last_reply_at_ms,
            thread_participants=tuple(sorted(self.participants.get(row.id, ()))),
            pinned_by=row.pinned_by,
            pinned_at_ms=row.pinned_at_ms,
            via_backend=row.via_backend,
        )

    def unread(self, group_id: int, user_id: int, read_seq: int) -> int:
        """Messages of the main timeline after `read_seq` by others (up to the cap)."""
        return min(UNREAD_COUNT_MAX, sum(
            1 for m in self.by_group.get(group_id, ())
            if m.seq > read_seq and m.user_id != user_id and m.in_timeline))

    def mentions_unread(self, group_id: int, user_id: int, read_seq: int) -> int:
        """Mentions of the user (by name or @all) after `read_seq`, by others (up to the
        cap)."""
        return min(UNREAD_COUNT_MAX, sum(
            len(m.mentioned() & {user_id, 0})
            for m in self.by_group.get(group_id, ())
            if m.seq > read_seq and m.user_id != user_id and not m.deleted
        ))

    def thread_unread(self, parent_id: int, user_id: int) -> int:
        """Replies by others after the participant's position in the thread (0 otherwise)."""
        read = self.participants.get(parent_id, {}).get(user_id)
        if read is None:
            return 0
        parent = self.messages[parent_id]
        return sum(1 for m in self.by_group.get(parent.group_id, ())
                   if m.thread_parent_id == parent_id and m.seq > read and m.user_id != user_id)

    def group_thread_unread(self, group_id: int, user_id: int) -> int:
        return sum(self.thread_unread(p, user_id) for p, who in self.participants.items()
                   if user_id in who and self.messages[p].group_id == group_id)

    def show_group(self, group: GroupRow, viewer: int, with_members: bool) -> Group:
        """A group as `viewer` sees it (per-member state when they are a member)."""
        me = group.members.get(viewer)
        mentions = 0 if me is None else self.mentions_unread(group.id, viewer, me.read_seq)
        return Group(
            id=group.id,
            name=group.name,
            description=group.description,
            created_by=group.created_by,
            created_at_ms=group.created_at_ms,
            invite_only=group.invite_only,
            last_seq=group.last_seq,
            member_count=len(group.members),
            member_ids=tuple(u for u, _ in group.ordered_members()) if with_members else (),
            my_role=me.role if me is not None else Role.NONE,
            read_seq=me.read_seq if me is not None else 0,
            unread_count=self.unread(group.id, viewer, me.read_seq) if me is not None else 0,
            mention_count=mentions,
            muted=me.muted if me is not None else False,
            last_update_seq=group.last_update_seq,
            thread_unread_count=0 if me is None else self.group_thread_unread(group.id, viewer),
            pinned_count=sum(1 for m in self.by_group.get(group.id, ()) if m.pinned_by),
            avatar=group.avatar,
            archived=group.archived,
            direct=group.direct is not None,
            direct_peer=None if group.direct is None else self._peer(group.direct, viewer),
        )

    def _peer(self, pair: tuple[int, int], viewer: int) -> UserProfile:
        low, high = pair
        peer = self.profile(high if viewer == low else low)
        return UserProfile(peer.id, peer.name, avatar=peer.avatar)

    def banned(self, group_id: int, user_id: int) -> bool:
        ban = self.group_bans.get((group_id, user_id))
        return ban is not None and (ban[0] == 0 or ban[0] > now_ms())
