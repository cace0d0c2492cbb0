"""The user directory the app's backend keeps (issue 15): profiles synced in bulk, so members
show with their names before they ever connect, and never stale; deleting (anonymising) a
user. Apps that do not sync keep working from token claims (ChatService.remember)."""

from __future__ import annotations

from collections.abc import Sequence

from chat_service.domain import backend_validation as checks
from chat_service.domain import validation
from chat_service.domain.models import ChatEvent, MemberChange, UserProfile, UserUpdated
from chat_service.domain.ports import AdminRepository, EventPublisher
from chat_service.domain.publishing import membership_events, publish_quietly
from chat_service.domain.system_text import DELETED_USER


class Directory:
    def __init__(self, repo: AdminRepository, events: EventPublisher) -> None:
        self._repo = repo
        self._events = events

    async def upsert_users(self, users: Sequence[UserProfile]) -> list[int]:
        """Store up to 100 profiles; each changed one reaches the members of the user's
        groups (UserUpdatedEvent, on every pod). Returns the changed ids."""
        clean = checks.profiles(users)
        changed = await self._repo.upsert_directory(clean)
        by_id = {u.id: u for u in clean}
        events: list[ChatEvent] = []
        for uid in changed:
            groups = await self._repo.group_ids_for_user(uid)
            if groups:
                events.append(UserUpdated(by_id[uid], tuple(groups)))
        await publish_quietly(self._events, events)
        return changed

    async def delete_user(self, user_id: int, *, erased: bool = False) -> int:
        """Anonymise the profile (members see "Deleted user" at once), then remove the user
        from every group (each records "Deleted user left"). Returns the groups left.
        `erased`: the user's tokens are refused from now on (EraseUser)."""
        validation.user_id(user_id)
        await self._repo.anonymise_user(user_id, erased=erased)
        anonymous = UserProfile(id=user_id, name=DELETED_USER)
        groups = await self._repo.group_ids_for_user(user_id)
        events: list[ChatEvent] = [UserUpdated(anonymous, tuple(groups))] if groups else []
        for gid in groups:
            result = await self._repo.remove_member(gid, user_id, anonymous, MemberChange.LEFT)
            events.extend(membership_events(result, MemberChange.LEFT, anonymous, user_id))
        await publish_quietly(self._events, events)
        return len(groups)
