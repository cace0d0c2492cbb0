"""Direct messages (issue 15): exactly one 1:1 conversation per pair of users, whoever asks
first and on whatever pod (storage decides, by a unique index on the ordered pair). It is an
invite-only group of two plain members that nobody can join or be added to; each side sees
the other's profile in `Group.direct_peer`.

Nobody opens (or reopens) a conversation with a user banned backend-wide or erased: NOT_FOUND,
with one message for both, so the caller learns only that this user cannot be messaged now,
not why (a ban is not shown to others; an erased user is "Deleted user" either way)."""

from __future__ import annotations

from chat_service.domain import validation
from chat_service.domain.errors import InvalidArgument, NotFound
from chat_service.domain.models import (
    ChatEvent,
    Group,
    MemberChange,
    MembershipChanged,
    MessagePosted,
    UserProfile,
)
from chat_service.domain.ports import AdminRepository, BannedUsers, EventPublisher, RateLimits
from chat_service.domain.publishing import publish_quietly


class DirectMessages:
    def __init__(
        self,
        repo: AdminRepository,
        events: EventPublisher,
        rate: RateLimits | None = None,
        banned: BannedUsers | None = None,
    ) -> None:
        self._repo = repo
        self._events = events
        self._rate = rate
        self._banned = banned

    async def get_or_create(self, caller: UserProfile, other_id: int) -> Group:
        validation.user_id(other_id)
        if other_id == caller.id:
            raise InvalidArgument("a direct conversation needs another user")
        if self._rate is not None:
            # Spent first, so probing who can be messaged costs the caller's budget too.
            await self._rate.check("user_reads", caller.id)
        if self._banned is not None and self._banned.is_banned(other_id):
            raise NotFound(f"user {other_id} cannot be messaged")
        if self._rate is not None and await self._repo.find_direct(caller.id, other_id) is None:
            # Creating one is a group creation: its budget bounds minting conversations.
            await self._rate.check("user_groups_created", caller.id)
        group_id, first = await self._repo.get_or_create_direct(caller, other_id)
        if first is not None:
            other = await self._repo.profile_of(other_id)
            # Both sides' open subscriptions pick the new conversation up from these.
            events: list[ChatEvent] = [
                MembershipChanged(group_id=group_id, change=MemberChange.JOINED, user=user,
                                  actor_id=caller.id, seq=first.seq)
                for user in (caller, other)
            ]
            events.append(MessagePosted(first))
            await publish_quietly(self._events, events)
        group = await self._repo.get_group(group_id, caller.id)
        assert group is not None
        return group
