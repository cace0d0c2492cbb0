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


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What the Laravel app told us about a user (token claims), kept for member lists."""

    id: int
    name: str = ""
    email: str = ""
    avatar: str = ""


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


@dataclass(frozen=True, slots=True)
class HistoryPage:
    messages: list[Message]
    has_more: bool


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
class PresenceChanged:
    user_id: int
    online: bool
    group_ids: tuple[int, ...] = field(default=())


ChatEvent = MessagePosted | TypingChanged | MembershipChanged | PresenceChanged
