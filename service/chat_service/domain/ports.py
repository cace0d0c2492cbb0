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
    Message,
    MessageKind,
    PostResult,
    Role,
    UserProfile,
)


class ChatRepository(Protocol):
    """Durable storage: PostgreSQL in production."""

    async def upsert_user(self, user: UserProfile) -> None: ...

    async def create_group(
        self,
        *,
        name: str,
        description: str,
        creator: UserProfile,
        member_ids: Sequence[int],
        invite_only: bool,
    ) -> tuple[Group, Message]: ...

    async def get_group(self, group_id: int, viewer_id: int) -> Group | None: ...

    async def list_groups_for_user(self, user_id: int) -> list[Group]: ...

    async def role_of(self, group_id: int, user_id: int) -> Role: ...

    async def add_member(
        self, group_id: int, user_id: int, actor: UserProfile, max_members: int
    ) -> MembershipResult: ...

    async def remove_member(
        self, group_id: int, user_id: int, actor: UserProfile, change: MemberChange
    ) -> MembershipResult: ...

    async def list_members(self, group_id: int) -> list[Member]: ...

    async def count_members(self, group_id: int) -> int: ...

    async def post_message(
        self,
        *,
        group_id: int,
        sender: UserProfile,
        content: str,
        kind: MessageKind,
        client_msg_id: str,
    ) -> PostResult | None:
        """Store a message; None when the sender is not a member (or no such group)."""
        ...

    async def history(self, group_id: int, before_id: int, limit: int) -> HistoryPage: ...

    async def messages_after(
        self, group_id: int, after_seq: int, upto_seq: int, limit: int
    ) -> list[Message]: ...

    async def group_ids_for_user(self, user_id: int) -> list[int]: ...

    async def group_heads(self, group_ids: Sequence[int]) -> dict[int, int]:
        """Current last_seq of each existing group."""
        ...


class EventPublisher(Protocol):
    """Carries events to every subscriber of a group, wherever it is connected."""

    async def publish(self, events: Sequence[ChatEvent]) -> None: ...


class PresenceTracker(Protocol):
    """Who is online, across pods; told when this pod's streams open and close."""

    async def online_users(self, user_ids: Sequence[int]) -> set[int]: ...

    async def connected(self, user_id: int) -> None: ...

    async def disconnected(self, user_id: int) -> None: ...
