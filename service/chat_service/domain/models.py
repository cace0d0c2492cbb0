"""Chat domain values: users, groups, members, messages and the events they produce."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Role(enum.IntEnum):
    NONE = 0
    MEMBER = 1
    ADMIN = 2
    OWNER = 3

    @property
    def manages_members(self) -> bool:
        return self >= Role.ADMIN


class MessageKind(enum.IntEnum):
    TEXT = 0
    IMAGE = 1
    FILE = 2
    SYSTEM = 3


class MemberChange(enum.IntEnum):
    JOINED = 1
    LEFT = 2
    REMOVED = 3
    BANNED = 4


class ActionKind(enum.IntEnum):
    """Moderation actions (ModerationAction.Kind on the wire)."""

    BAN = 1
    UNBAN = 2
    MUTE = 3
    UNMUTE = 4
    REPORT = 5
    USER_BAN = 6
    USER_UNBAN = 7


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What the Laravel app told us about a user (token claims), kept for member lists."""

    id: int
    name: str = ""
    email: str = ""
    avatar: str = ""
    custom_json: str = ""  # the app's own JSON (ChatBackend.UpsertUsers); "" when none


# Who acts when the app's backend does (actor id 0 on the wire and in SYSTEM messages).
BACKEND_ACTOR = UserProfile(id=0, name="System")


@dataclass(frozen=True, slots=True)
class Member:
    user: UserProfile
    role: Role
    joined_at_ms: int


@dataclass(frozen=True, slots=True)
class Group:
    id: int
    name: str
    description: str
    created_by: int
    created_at_ms: int
    invite_only: bool
    last_seq: int
    member_count: int
    member_ids: tuple[int, ...] = ()
    my_role: Role = Role.NONE
    read_seq: int = 0
    unread_count: int = 0
    mention_count: int = 0
    muted: bool = False
    last_update_seq: int = 0
    thread_unread_count: int = 0
    pinned_count: int = 0
    avatar: str = ""
    archived: bool = False
    direct: bool = False
    direct_peer: UserProfile | None = None

    def public_card(self) -> Group:
        """What a non-member may see of an open group: id, name, description, creator,
        creation time, invite_only and member_count. Not who the members are, nor how far
        the conversation has gone (last_seq, last_update_seq), nor per-member state."""
        return Group(
            id=self.id,
            name=self.name,
            description=self.description,
            created_by=self.created_by,
            created_at_ms=self.created_at_ms,
            invite_only=self.invite_only,
            last_seq=0,
            member_count=self.member_count,
            avatar=self.avatar,
            archived=self.archived,
        )


@dataclass(frozen=True, slots=True)
class Mention:
    user_id: int  # 0 for @all
    offset: int  # in code points of the content
    length: int

    @property
    def all(self) -> bool:
        return self.user_id == 0


@dataclass(frozen=True, slots=True)
class ReactionCount:
    emoji: str
    count: int
    mine: bool = False


@dataclass(frozen=True, slots=True)
class Quote:
    id: int
    user_id: int
    user_name: str
    content: str
    deleted: bool


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    id: str
    file_name: str
    content_type: str
    size: int
    width: int
    height: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    group_id: int
    seq: int
    sender: UserProfile
    content: str
    kind: MessageKind
    created_at_ms: int
    client_msg_id: str = ""
    mentions: tuple[Mention, ...] = ()
    reactions: tuple[ReactionCount, ...] = ()
    reply_to_id: int = 0
    reply_quote: Quote | None = None
    edited_at_ms: int = 0
    deleted: bool = False
    attachment: AttachmentInfo | None = None
    update_seq: int = 0
    via_backend: bool = False
    thread_parent_id: int = 0  # a thread reply names its thread's parent
    also_in_group: bool = False  # a thread reply also shown in the main timeline
    reply_count: int = 0  # a parent: its thread's summary
    last_reply_at_ms: int = 0
    thread_participants: tuple[int, ...] = ()
    pinned_by: int = 0
    pinned_at_ms: int = 0

    @property
    def in_timeline(self) -> bool:
        """Shown in the group's main timeline (history, unread counts)."""
        return not self.thread_parent_id or self.also_in_group


@dataclass(frozen=True, slots=True)
class GroupHead:
    """Where a group stands: its last message seq and its last change (update_seq)."""

    seq: int
    update_seq: int = 0


@dataclass(frozen=True, slots=True)
class HistoryPage:
    messages: list[Message]
    has_more: bool


@dataclass(frozen=True, slots=True)
class ErasedContent:
    """What erasing a user's content did: their messages concerned, and every message that
    took a new update_seq (theirs tombstoned, others' that lost their reactions)."""

    messages: int
    changed_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PostResult:
    message: Message
    duplicate: bool  # True when an earlier send with the same client_msg_id was returned


@dataclass(frozen=True, slots=True)
class MembershipResult:
    changed: bool
    message: Message | None  # the SYSTEM message recording the change, when it changed


# ---- events carried to subscribers (transport-neutral) ----


@dataclass(frozen=True, slots=True)
class MessagePosted:
    message: Message


@dataclass(frozen=True, slots=True)
class TypingChanged:
    group_id: int
    user_id: int
    is_typing: bool


@dataclass(frozen=True, slots=True)
class MembershipChanged:
    group_id: int
    change: MemberChange
    user: UserProfile
    actor_id: int
    seq: int
    role: Role = Role.MEMBER


@dataclass(frozen=True, slots=True)
class MessageUpdated:
    """An edit, delete or reaction change: the message's full new state."""

    message: Message


@dataclass(frozen=True, slots=True)
class ReceiptMoved:
    group_id: int
    user_id: int
    read_seq: int


@dataclass(frozen=True, slots=True)
class Mentioned:
    group_id: int
    message_id: int
    seq: int
    from_user_id: int
    user_id: int  # 0: @all


@dataclass(frozen=True, slots=True)
class ThreadReplied:
    """A new reply, for the thread's participants (the reply itself is a MessagePosted)."""

    group_id: int
    parent_id: int
    message_id: int
    seq: int
    from_user_id: int
    participant_ids: tuple[int, ...]
    reply_count: int


@dataclass(frozen=True, slots=True)
class PinChanged:
    group_id: int
    message_id: int
    pinned: bool
    actor_id: int


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    user_id: int
    online: bool
    group_ids: tuple[int, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class GroupChanges:
    """UpdateGroup: the fields to change (None: leave as is)."""

    name: str | None = None
    description: str | None = None
    avatar: str | None = None
    invite_only: bool | None = None
    archived: bool | None = None


@dataclass(frozen=True, slots=True)
class ModerationAction:
    id: int
    group_id: int  # 0: backend-wide
    user_id: int
    actor_id: int  # 0: the app's backend
    kind: ActionKind
    reason: str
    expires_at_ms: int  # 0: until lifted
    created_at_ms: int
    message_id: int = 0


@dataclass(frozen=True, slots=True)
class GroupUpdated:
    group: Group
    actor_id: int

    @property
    def group_id(self) -> int:
        return self.group.id


@dataclass(frozen=True, slots=True)
class GroupDeleted:
    group_id: int
    actor_id: int


@dataclass(frozen=True, slots=True)
class UserUpdated:
    """A profile changed: addressed to each group the user belongs to."""

    user: UserProfile
    group_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ModerationRecorded:
    action: ModerationAction

    @property
    def group_id(self) -> int:
        return self.action.group_id


@dataclass(frozen=True, slots=True)
class AccessRevoked:
    """Between pods: a backend-wide ban (until `until_ms`; 0: for good) or erasure: the
    user's streams close and their tokens are refused. `until_ms` -1: the ban was lifted."""

    user_id: int
    reason: str
    until_ms: int = 0

    group_id = 0


ChatEvent = (
    MessagePosted
    | TypingChanged
    | MembershipChanged
    | PresenceChanged
    | MessageUpdated
    | ReceiptMoved
    | Mentioned
    | ThreadReplied
    | PinChanged
    | GroupUpdated
    | GroupDeleted
    | UserUpdated
    | ModerationRecorded
    | AccessRevoked
)
