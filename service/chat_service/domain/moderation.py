"""Moderation (issue 15): group bans (removed; cannot rejoin or post until lifted or
expired), mutes (may read, may not post; optional expiry), reports of messages, backend-wide
bans (cannot connect). Owners/admins moderate members below their role; the backend anyone.
Every action is logged (ListModeration) and is an event (ModerationEvent; reports and
backend-wide actions only reach the app, through the webhook)."""

from __future__ import annotations

import time

from chat_service.domain import backend_validation as checks
from chat_service.domain import validation
from chat_service.domain.access import visible_role
from chat_service.domain.admin_access import (
    Actor,
    actor_id,
    actor_profile,
    managing_role,
    outranks,
)
from chat_service.domain.errors import InvalidArgument, NotFound, PermissionDenied
from chat_service.domain.models import (
    AccessRevoked,
    ActionKind,
    ChatEvent,
    MemberChange,
    ModerationAction,
    ModerationRecorded,
    Role,
    UserProfile,
)
from chat_service.domain.ports import AdminRepository, EventPublisher, RateLimits
from chat_service.domain.publishing import membership_events, publish_quietly

GROUP_ACTIONS = (ActionKind.BAN, ActionKind.UNBAN, ActionKind.MUTE, ActionKind.UNMUTE)
LIST_DEFAULT = 50
LIST_MAX = 200


class Moderation:
    def __init__(
        self, repo: AdminRepository, events: EventPublisher, rate: RateLimits | None = None
    ) -> None:
        self._repo = repo
        self._events = events
        self._rate = rate

    async def moderate(
        self, actor: Actor, group_id: int, user_id: int, kind: int, reason: str,
        duration_seconds: int,
    ) -> ModerationAction:
        validation.group_id(group_id)
        validation.user_id(user_id)
        if kind not in GROUP_ACTIONS:
            raise InvalidArgument("kind must be BAN, UNBAN, MUTE or UNMUTE")
        action = ActionKind(kind)
        why = checks.reason(reason)
        seconds = checks.duration(duration_seconds)
        if actor is not None and actor.id == user_id:
            raise InvalidArgument("you cannot moderate yourself")
        if actor is not None and self._rate is not None:
            await self._rate.check("user_edit", actor.id)  # an action is an edit's worth
        role = await managing_role(self._repo, group_id, actor, "moderate members")
        target_role = await self._repo.role_of(group_id, user_id)
        if not outranks(actor, role, target_role):
            raise PermissionDenied(
                f"a {role.name.lower()} cannot moderate a {target_role.name.lower()}"
            )
        until_ms = int(time.time() * 1000) + seconds * 1000 if seconds else 0
        events: list[ChatEvent] = []
        if action == ActionKind.BAN:
            await self._repo.ban_from_group(group_id, user_id, until_ms, why)
            if target_role != Role.NONE:
                result = await self._repo.remove_member(
                    group_id, user_id, actor_profile(actor), MemberChange.REMOVED
                )
                profile = await self._repo.profile_of(user_id)
                events.extend(membership_events(result, MemberChange.BANNED, profile,
                                                actor_id(actor)))
        elif action == ActionKind.UNBAN:
            if not await self._repo.unban_from_group(group_id, user_id):
                raise NotFound(f"user {user_id} is not banned from group {group_id}")
        elif not await self._repo.silence(
            group_id, user_id, until_ms if action == ActionKind.MUTE else None
        ):
            raise NotFound(f"user {user_id} is not a member of group {group_id}")
        logged = await self._repo.record_action(
            group_id=group_id, user_id=user_id, actor_id=actor_id(actor), kind=action,
            reason=why, expires_at_ms=until_ms if action in (ActionKind.BAN, ActionKind.MUTE)
            else 0,
        )
        await publish_quietly(self._events, [*events, ModerationRecorded(logged)])
        return logged

    async def report(self, caller: UserProfile, message_id: int, reason: str) -> ModerationAction:
        """A member reports a message: logged for the group's moderators and sent to the app
        (webhook `message.reported`); the group's streams are not told (who reported whom
        stays between the reporter, the moderators and the app)."""
        if message_id <= 0:
            raise InvalidArgument("message_id must be a positive integer")
        why = checks.reason(reason)
        if self._rate is not None:
            await self._rate.check("user_send", caller.id)
        message = await self._repo.get_message(message_id)
        if message is None or await visible_role(
            self._repo, message.group_id, caller.id
        ) == Role.NONE:
            raise NotFound(f"message {message_id} not found")
        logged = await self._repo.record_action(
            group_id=message.group_id, user_id=message.sender.id, actor_id=caller.id,
            kind=ActionKind.REPORT, reason=why, message_id=message_id,
        )
        await publish_quietly(self._events, [ModerationRecorded(logged)])
        return logged

    async def list_actions(
        self, actor: Actor, group_id: int, before_id: int, limit: int
    ) -> tuple[list[ModerationAction], bool]:
        if before_id < 0:
            raise InvalidArgument("before_id must not be negative")
        if limit < 0 or limit > LIST_MAX:
            raise InvalidArgument(f"limit must be 0 (default {LIST_DEFAULT}) to {LIST_MAX}")
        if group_id != 0 or actor is not None:
            validation.group_id(group_id)
            if actor is not None and self._rate is not None:
                await self._rate.check("user_reads", actor.id)
            await managing_role(self._repo, group_id, actor, "see the moderation log")
        return await self._repo.list_actions(group_id, before_id, limit or LIST_DEFAULT)

    # ---- backend-wide (the backend only) ----

    async def ban_user(self, user_id: int, reason: str, duration_seconds: int
                       ) -> ModerationAction:
        """The user cannot connect (any pod refuses their tokens; open streams close)."""
        validation.user_id(user_id)
        why = checks.reason(reason)
        seconds = checks.duration(duration_seconds)
        until_ms = int(time.time() * 1000) + seconds * 1000 if seconds else 0
        await self._repo.set_user_ban(user_id, until_ms, why)
        logged = await self._repo.record_action(
            group_id=0, user_id=user_id, actor_id=0, kind=ActionKind.USER_BAN, reason=why,
            expires_at_ms=until_ms,
        )
        await publish_quietly(self._events, [
            AccessRevoked(user_id, f"banned: {why}" if why else "banned", until_ms),
            ModerationRecorded(logged),
        ])
        return logged

    async def unban_user(self, user_id: int) -> ModerationAction:
        validation.user_id(user_id)
        await self._repo.set_user_ban(user_id, None, "")
        logged = await self._repo.record_action(
            group_id=0, user_id=user_id, actor_id=0, kind=ActionKind.USER_UNBAN, reason="",
        )
        await publish_quietly(self._events, [
            AccessRevoked(user_id, "", -1),  # -1: lifted (pods forget the ban at once)
            ModerationRecorded(logged),
        ])
        return logged
