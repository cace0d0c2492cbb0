"""Group administration (issue 15): the group's card (name, description, avatar,
invite-only, archived) by owners/admins or the backend; by the backend alone: groups created
for a user, deletion, members in batches, messages as the system or on behalf of a member."""

from __future__ import annotations

from dataclasses import replace

from chat_service.domain import backend_validation as checks
from chat_service.domain import validation
from chat_service.domain.access import group_not_found
from chat_service.domain.admin_access import Actor, actor_id, managing_role
from chat_service.domain.chat import ChatService
from chat_service.domain.errors import InvalidArgument, PermissionDenied
from chat_service.domain.limits import Limits
from chat_service.domain.models import (
    BACKEND_ACTOR,
    ChatEvent,
    Group,
    GroupChanges,
    GroupDeleted,
    GroupUpdated,
    MemberChange,
    MessageKind,
    MessagePosted,
    PostResult,
    Role,
)
from chat_service.domain.ports import (
    AdminRepository,
    AttachmentPurger,
    EventPublisher,
    RateLimits,
)
from chat_service.domain.publishing import membership_events, publish_quietly


class GroupAdmin:
    def __init__(
        self,
        repo: AdminRepository,
        chat: ChatService,
        events: EventPublisher,
        limits: Limits,
        attachments: AttachmentPurger | None = None,
        rate: RateLimits | None = None,
    ) -> None:
        self._rate = rate
        self._repo = repo
        self._chat = chat
        self._events = events
        self._limits = limits
        self._attachments = attachments

    async def update_group(self, actor: Actor, group_id: int, changes: GroupChanges) -> Group:
        validation.group_id(group_id)
        clean = GroupChanges(
            name=None if changes.name is None
            else validation.group_name(changes.name, self._limits),
            description=None if changes.description is None
            else validation.group_description(changes.description, self._limits),
            avatar=None if changes.avatar is None else checks.avatar(changes.avatar),
            invite_only=changes.invite_only,
            archived=changes.archived,
        )
        if clean == GroupChanges():
            raise InvalidArgument("nothing to change: set name, description, avatar, "
                                  "invite_only or archived")
        if actor is not None and self._rate is not None:
            await self._rate.check("user_edit", actor.id)
        role = await managing_role(self._repo, group_id, actor, "change the group")
        if clean.archived is not None and role != Role.OWNER:
            raise PermissionDenied("only the owner can archive or reopen the group")
        current = await self._repo.get_group(group_id, actor_id(actor))
        if current is not None and current.direct and (
            clean.name is not None or clean.invite_only is not None
        ):
            raise PermissionDenied("a direct conversation has no name and stays private")
        if not await self._repo.update_group(group_id, clean):
            raise group_not_found(group_id)
        group = await self._repo.get_group(group_id, actor_id(actor))
        assert group is not None
        await publish_quietly(self._events, [GroupUpdated(group, actor_id(actor))])
        return group

    # ---- the backend only ----

    async def create_group(
        self, *, owner_id: int, name: str, description: str, avatar: str, invite_only: bool,
        member_ids: list[int],
    ) -> Group:
        validation.user_id(owner_id, "owner_id")
        clean_avatar = checks.avatar(avatar)
        owner = await self._repo.profile_of(owner_id)
        # Not the owner's creation budget: the app may make many teams for one person.
        group = await self._chat.create_group(
            owner, name=name, description=description, member_ids=member_ids,
            invite_only=invite_only, spend_budget=False,
        )
        if clean_avatar:
            await self._repo.update_group(group.id, GroupChanges(avatar=clean_avatar))
            group = replace(group, avatar=clean_avatar)
        return group

    async def delete_group(self, group_id: int) -> None:
        """Attachments (bytes and rows) first, then the group with everything in it; open
        streams are told (GroupDeletedEvent) and stop receiving the group."""
        validation.group_id(group_id)
        if await self._repo.get_group(group_id, 0) is None:
            raise group_not_found(group_id)
        if self._attachments is not None:
            for attachment_id in await self._repo.group_attachment_ids(group_id):
                await self._attachments.purge(attachment_id)
        if not await self._repo.delete_group(group_id):
            raise group_not_found(group_id)
        await publish_quietly(self._events, [GroupDeleted(group_id, 0)])

    async def add_members(self, group_id: int, user_ids: list[int]) -> list[int]:
        return await self._change_members(group_id, user_ids, add=True)

    async def remove_members(self, group_id: int, user_ids: list[int]) -> list[int]:
        return await self._change_members(group_id, user_ids, add=False)

    async def _change_members(self, group_id: int, user_ids: list[int], *, add: bool
                              ) -> list[int]:
        validation.group_id(group_id)
        ids = checks.user_batch(user_ids)
        if await self._repo.get_group(group_id, 0) is None:
            raise group_not_found(group_id)
        changed: list[int] = []
        events: list[ChatEvent] = []
        for uid in ids:
            if add:
                result = await self._repo.add_member(
                    group_id, uid, BACKEND_ACTOR, self._limits.members_per_group_max
                )
            else:
                result = await self._repo.remove_member(
                    group_id, uid, BACKEND_ACTOR, MemberChange.REMOVED
                )
            if result.changed:
                changed.append(uid)
                change = MemberChange.JOINED if add else MemberChange.REMOVED
                profile = await self._repo.profile_of(uid)
                events.extend(membership_events(result, change, profile, 0))
        await publish_quietly(self._events, events)
        return changed

    async def post(
        self, group_id: int, content: str, act_as: int, client_msg_id: str
    ) -> PostResult:
        """A SYSTEM message from the backend (act_as 0), or a message on behalf of a member,
        marked `via_backend`."""
        validation.group_id(group_id)
        key = validation.client_msg_id(client_msg_id, self._limits)
        text = validation.message_content(content, MessageKind.TEXT, self._limits)
        if act_as < 0:
            raise InvalidArgument("act_as must be 0 (the system) or a user id")
        if act_as == 0:
            result = await self._repo.post_from_backend(group_id, text, key)
            if result is None:
                group = await self._repo.get_group(group_id, 0)
                if group is None:
                    raise group_not_found(group_id)
                raise PermissionDenied(f"group {group_id} is archived: it is read-only")
        else:
            sender = await self._repo.profile_of(act_as)
            result = await self._repo.post_message(
                group_id=group_id, sender=sender, content=text, kind=MessageKind.TEXT,
                client_msg_id=key, via_backend=True,
            )
            if result is None:
                if await self._repo.get_group(group_id, 0) is None:
                    raise group_not_found(group_id)
                raise PermissionDenied(f"user {act_as} is not a member of group {group_id}")
        if not result.duplicate:
            await publish_quietly(self._events, [MessagePosted(result.message)])
        return result
