"""Interfaces the domain needs from the outside world; adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chat_service.domain.models import (
    ChatEvent,
    Group,
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


class UserStore(Protocol):
    async def upsert_user(self, user: UserProfile) -> None: ...


class GroupLookup(Protocol):
    async def get_group(self, group_id: int, viewer_id: int) -> Group | None: ...


class GroupStore(GroupLookup, Protocol):
    async def create_group(
        self,
        *,
        name: str,
        description: str,
        creator: UserProfile,
        member_ids: Sequence[int],
        invite_only: bool,
    ) -> tuple[Group, Message]: ...

    async def list_groups_for_user(self, user_id: int) -> list[Group]: ...

    async def group_ids_for_user(self, user_id: int) -> list[int]: ...

    async def group_heads(self, group_ids: Sequence[int]) -> dict[int, int]:
        """Current last_seq of each existing group."""
        ...


class MembershipQuery(Protocol):
    async def role_of(self, group_id: int, user_id: int) -> Role:
        """Role.NONE for a non-member (or no such group)."""
        ...


class MembershipStore(MembershipQuery, Protocol):
    async def add_member(
        self, group_id: int, user_id: int, actor: UserProfile, max_members: int
    ) -> MembershipResult: ...

    async def remove_member(
        self, group_id: int, user_id: int, actor: UserProfile, change: MemberChange
    ) -> MembershipResult: ...

    async def list_members(self, group_id: int) -> list[Member]: ...

    async def member_names(self, group_id: int) -> list[tuple[int, str]]: ...

    async def set_role(self, group_id: int, user_id: int, role: Role) -> Member | None: ...


class GroupAccess(MembershipQuery, GroupLookup, Protocol):
    """Enough to apply the visibility rule (domain/access.py) to a caller."""


class MessageStore(Protocol):
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
    ) -> PostResult | None:
        """Store a message; None when the sender is not a member (or no such group)."""
        ...

    async def get_message(self, message_id: int, viewer: int = 0) -> Message | None: ...

    async def history(
        self, group_id: int, before_id: int, limit: int, viewer: int = 0
    ) -> HistoryPage: ...

    async def mentions_of(self, user_id: int, before_id: int, limit: int) -> HistoryPage: ...

    async def messages_after(
        self, group_id: int, after_seq: int, upto_seq: int, limit: int
    ) -> list[Message]: ...

    async def attachment_usable(self, attachment_id: str, owner_id: int, group_id: int) -> bool:
        """A finished upload of this owner in this group, not yet sent in a message."""
        ...


class ChatRepository(UserStore, GroupStore, MembershipStore, MessageStore, Protocol):
    """Durable storage of the chat use cases (PostgreSQL in production): one object that is
    every store above. Receipts and message changes have stores of their own below."""


class EventPublisher(Protocol):
    """Carries events to every subscriber of a group, wherever it is connected."""

    async def publish(self, events: Sequence[ChatEvent]) -> None: ...


class PresenceTracker(Protocol):
    """Who is online, across pods; told when this pod's streams open and close."""

    async def online_users(self, user_ids: Sequence[int]) -> set[int]: ...

    async def connected(self, user_id: int, group_ids: Sequence[int] | None = None) -> None:
        """A stream opened; `group_ids` are the user's groups when the caller knows them."""
        ...

    async def disconnected(self, user_id: int) -> None: ...


class ReadResultLike(Protocol):
    @property
    def read_seq(self) -> int: ...
    @property
    def unread_count(self) -> int: ...
    @property
    def moved(self) -> bool: ...
    @property
    def private(self) -> bool: ...


class ReceiptStore(Protocol):
    async def mark_read(
        self, group_id: int, user_id: int, seq: int
    ) -> ReadResultLike | None: ...

    async def readers(
        self, group_id: int, message_id: int
    ) -> tuple[list[UserProfile], int] | None: ...

    async def set_muted(self, group_id: int, user_id: int, muted: bool) -> bool: ...

    async def private_receipts(self, user_id: int, value: bool | None) -> bool: ...


class MessageChangeStore(Protocol):
    async def edit(
        self, message: Message, content: str, mentions: Sequence[Mention]
    ) -> Message: ...

    async def delete(self, message: Message) -> tuple[Message, str]: ...

    async def react(
        self, message: Message, user_id: int, emoji: str, add: bool, max_distinct: int
    ) -> tuple[Message, bool]: ...


class AttachmentPurger(Protocol):
    async def purge(self, attachment_id: str) -> None: ...


class RateLimits(Protocol):
    """Raises ResourceExhausted (naming the limit and when to retry) when over a rule."""

    async def check(self, rule: str, *identifiers: int, cost: int = 1) -> None: ...
