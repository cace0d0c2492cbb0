"""Use cases of the chat: what a caller may do to groups and messages.

Knows nothing of gRPC, SQL or Redis: storage and fan-out come in through the ports.
"""

from __future__ import annotations

import asyncio
import time

from chat_service.domain import validation
from chat_service.domain.access import group_not_found, require_visible, visible_role
from chat_service.domain.errors import InvalidArgument, NotFound, PermissionDenied
from chat_service.domain.limits import Limits
from chat_service.domain.mentions import find_mentions
from chat_service.domain.models import (
    ChatEvent,
    Group,
    HistoryPage,
    Member,
    MemberChange,
    MembershipChanged,
    MembershipResult,
    Mention,
    Mentioned,
    MessageKind,
    MessagePosted,
    PostResult,
    Role,
    TypingChanged,
    UserProfile,
)
from chat_service.domain.ports import ChatRepository, EventPublisher, PresenceTracker, RateLimits
from chat_service.domain.privacy import PRIVATE, Privacy
from chat_service.domain.publishing import membership_events, publish_quietly

# A read costs 1 unit of the caller's "reads" budget per this many messages asked for (at
# least 1): a page of 200 costs 4, a member list, group list or read receipts 1.
READ_COST_MESSAGES = 50


def read_cost(page_size: int) -> int:
    return max(1, -(-page_size // READ_COST_MESSAGES))


class ChatService:
    def __init__(
        self,
        repo: ChatRepository,
        events: EventPublisher,
        presence: PresenceTracker,
        limits: Limits,
        rate: RateLimits | None = None,
        privacy: Privacy = PRIVATE,
    ) -> None:
        self._repo = repo
        self._privacy = privacy
        self._events = events
        self._presence = presence
        self._limits = limits
        self._rate = rate
        self._known_profiles: dict[int, UserProfile] = {}
        self._typing_sent: dict[tuple[int, int], float] = {}
        self.typing_throttle_seconds = 2.0
        # (group, user) -> until when (monotonic) this pod takes the user as a member for the
        # group's send budget; see post_message.
        self._senders: dict[tuple[int, int], float] = {}
        self.sender_cache_seconds = 30.0

    # ---- identity ----

    async def remember(self, user: UserProfile) -> None:
        """Keep the caller's display data (from token claims) for member lists. The API calls
        this once per call, right after authenticating (api.calls.Callers)."""
        if self._known_profiles.get(user.id) == user:
            return
        await self._repo.upsert_user(user)
        if len(self._known_profiles) > 100_000:
            self._known_profiles.clear()
        self._known_profiles[user.id] = user

    @staticmethod
    def check_acting_user(caller: UserProfile, claimed: int, field: str) -> None:
        """A request field naming the acting user must be empty (0) or the caller."""
        if claimed not in (0, caller.id):
            raise PermissionDenied(
                f"{field}={claimed} does not match the authenticated user; "
                "identity comes from the token"
            )

    # ---- groups ----

    async def create_group(
        self,
        caller: UserProfile,
        *,
        name: str,
        description: str,
        member_ids: list[int],
        invite_only: bool,
        spend_budget: bool = True,  # False: made by the app's backend for this owner
    ) -> Group:
        clean_name = validation.group_name(name, self._limits)
        clean_description = validation.group_description(description, self._limits)
        others = [m for m in validation.member_ids(member_ids, self._limits) if m != caller.id]
        if spend_budget:
            await self._check_rate("user_groups_created", caller.id)
        group, created = await self._repo.create_group(
            name=clean_name,
            description=clean_description,
            creator=caller,
            member_ids=others,
            invite_only=invite_only,
        )
        # Members' open subscriptions pick the new group up from these events.
        joined: list[ChatEvent] = [
            MembershipChanged(
                group_id=group.id,
                change=MemberChange.JOINED,
                user=caller if uid == caller.id else UserProfile(id=uid),
                actor_id=caller.id,
                seq=created.seq,
                role=Role.OWNER if uid == caller.id else Role.MEMBER,
            )
            for uid in group.member_ids
        ]
        await self._publish([*joined, MessagePosted(created)])
        return group

    async def get_group(self, caller: UserProfile, group_id: int) -> Group:
        validation.group_id(group_id)
        group = await self._repo.get_group(group_id, caller.id)
        if group is None or (group.my_role == Role.NONE and group.invite_only):
            # Invite-only groups are invisible to outsiders: answered exactly like missing ones.
            raise group_not_found(group_id)
        if group.my_role == Role.NONE:
            # Strangers, and those who left or were removed, see an open group's public card.
            return group.public_card()
        return group

    async def list_my_groups(self, caller: UserProfile) -> list[Group]:
        await self._check_rate("user_reads", caller.id)
        return await self._repo.list_groups_for_user(caller.id)

    async def join_group(
        self, caller: UserProfile, group_id: int, user_id: int
    ) -> MembershipResult:
        validation.group_id(group_id)
        target = user_id or caller.id
        validation.user_id(target)
        group = await self._repo.get_group(group_id, caller.id)
        if group is None or (group.my_role == Role.NONE and group.invite_only):
            raise group_not_found(group_id)
        if target == caller.id:
            if group.my_role != Role.NONE:
                return MembershipResult(changed=False, message=None)
            if group.invite_only:
                raise PermissionDenied(
                    f"group {group_id} is invite-only: an owner or admin must add you"
                )
        elif not group.my_role.manages_members:
            raise PermissionDenied("only owners and admins can add other users")
        result = await self._repo.add_member(
            group_id, target, caller, self._limits.members_per_group_max
        )
        if result.changed and result.message is not None:
            await self._publish_membership(result, MemberChange.JOINED, target, caller)
        return result

    async def leave_group(
        self, caller: UserProfile, group_id: int, user_id: int
    ) -> MembershipResult:
        validation.group_id(group_id)
        target = user_id or caller.id
        validation.user_id(target)
        role = await self._repo.role_of(group_id, caller.id)
        if target == caller.id:
            if role == Role.NONE:
                await require_visible(self._repo, group_id)
                raise NotFound(f"you are not a member of group {group_id}")
            change = MemberChange.LEFT
        else:
            if not role.manages_members:
                if role == Role.NONE:
                    await require_visible(self._repo, group_id)
                raise PermissionDenied("only owners and admins can remove other members")
            target_role = await self._repo.role_of(group_id, target)
            if target_role == Role.NONE:
                raise NotFound(f"user {target} is not a member of group {group_id}")
            if target_role >= role:
                raise PermissionDenied(
                    f"a {role.name.lower()} cannot remove a {target_role.name.lower()}"
                )
            change = MemberChange.REMOVED
        result = await self._repo.remove_member(group_id, target, caller, change)
        if result.changed and result.message is not None:
            await self._publish_membership(result, change, target, caller)
        return result

    async def set_role(
        self, caller: UserProfile, group_id: int, user_id: int, role: int
    ) -> Member:
        validation.group_id(group_id)
        validation.user_id(user_id)
        if role not in (Role.ADMIN, Role.MEMBER):
            raise InvalidArgument("role must be ROLE_ADMIN or ROLE_MEMBER")
        mine = await self._require_member(group_id, caller.id)
        if mine != Role.OWNER:
            raise PermissionDenied("only the owner can change roles")
        if user_id == caller.id:
            raise InvalidArgument("the owner cannot change their own role")
        member = await self._repo.set_role(group_id, user_id, Role(role))
        if member is None:
            raise NotFound(f"user {user_id} is not a member of group {group_id}")
        return self._privacy.member(member)

    async def members(self, caller: UserProfile, group_id: int) -> list[tuple[Member, bool]]:
        await self._check_rate("user_reads", caller.id)
        await self._require_member(group_id, caller.id)
        members = await self._repo.list_members(group_id)
        online = await self._presence.online_users([m.user.id for m in members])
        return [(self._privacy.member(m), m.user.id in online) for m in members]

    # ---- messages ----

    async def post_message(
        self,
        caller: UserProfile,
        *,
        group_id: int,
        content: str,
        kind: int,
        client_msg_id: str,
        reply_to_id: int = 0,
        attachment_id: str = "",
    ) -> PostResult:
        validation.group_id(group_id)
        message_kind = validation.message_kind(kind)
        text = validation.message_content(content, message_kind, self._limits)
        key = validation.client_msg_id(client_msg_id, self._limits)
        if message_kind in (MessageKind.IMAGE, MessageKind.FILE) and not attachment_id:
            raise InvalidArgument(f"{message_kind.name} messages need an attachment_id")
        if attachment_id and message_kind not in (MessageKind.IMAGE, MessageKind.FILE):
            raise InvalidArgument("attachments go in IMAGE or FILE messages")
        if reply_to_id < 0:
            raise InvalidArgument("reply_to_id must not be negative")
        # Budgets (issue 12): a caller who may not post to the group must never spend the
        # group's budget, or strangers could silence its members.
        # 1. The caller's own budget first, right after authentication and input checks and
        #    before any storage work: it bounds every caller's flood, refused calls included.
        # 2. Membership, then the group's budget. Membership comes from a short per-pod memory
        #    of (group, sender) pairs whose last send was stored (the insert re-checks
        #    membership in its own statement, so a hit proves it a moment ago); a miss costs one
        #    role lookup, i.e. one extra round trip per sender, group and pod every
        #    `sender_cache_seconds` of silence, not per send. A member removed since can spend
        #    at most one unit of the group's budget: the insert refuses them and forgets them.
        # 3. The insert, which stays the authority on membership (same statement as the seq).
        # The group budget is not checked after the insert: by then the message is committed
        # with its seq and visible to every pod's sweep; refusing it would report a stored
        # message as refused, and taking it back would leave a hole in the gap-free seqs.
        # Nor inside the insert's transaction: a Redis call there would hold the group row
        # locks (and a whole batch of other users' sends) on the limiter's latency.
        await self._check_rate("user_send", caller.id)
        if attachment_id and not await self._repo.attachment_usable(
            attachment_id, caller.id, group_id
        ):
            raise InvalidArgument(
                f"attachment {attachment_id} is not a finished, unsent upload of yours "
                f"in group {group_id}"
            )
        sender = (group_id, caller.id)
        role = Role.NONE
        if "@" in text:
            role = await self._repo.role_of(group_id, caller.id)  # current role: @all needs it
            is_member = role != Role.NONE
        elif self._senders.get(sender, 0.0) > time.monotonic():
            is_member = True
        else:
            is_member = await self._repo.role_of(group_id, caller.id) != Role.NONE
        if not is_member:
            await require_visible(self._repo, group_id)
            raise PermissionDenied(f"you are not a member of group {group_id}")
        await self._check_rate("group_send", group_id)
        if reply_to_id:
            original = await self._repo.get_message(reply_to_id)
            if original is None or original.group_id != group_id:
                raise InvalidArgument(f"message {reply_to_id} is not in group {group_id}")
        mentions: list[Mention] = []
        if "@" in text:
            members = await self._repo.member_names(group_id)
            mentions = find_mentions(
                text, members, allow_all=role.manages_members, author_id=caller.id
            )
        result = await self._repo.post_message(
            group_id=group_id,
            sender=caller,
            content=text,
            kind=message_kind,
            client_msg_id=key,
            reply_to_id=reply_to_id,
            mentions=mentions,
            attachment_id=attachment_id,
        )
        if result is None:
            self._senders.pop(sender, None)
            await require_visible(self._repo, group_id)
            raise PermissionDenied(f"you are not a member of group {group_id}")
        if len(self._senders) > 100_000:
            self._senders.clear()
        self._senders[sender] = time.monotonic() + self.sender_cache_seconds
        if not result.duplicate:
            m = result.message
            events: list[ChatEvent] = [MessagePosted(m)]
            events.extend(
                Mentioned(m.group_id, m.id, m.seq, caller.id, uid)
                for uid in sorted({x.user_id for x in m.mentions})
            )
            await self._publish(events)
        return result

    async def my_mentions(self, caller: UserProfile, before_id: int, limit: int) -> HistoryPage:
        if before_id < 0:
            raise InvalidArgument("before_id must not be negative")
        size = validation.page_size(limit, self._limits)
        await self._check_rate("user_reads", caller.id, cost=read_cost(size))
        return await self._repo.mentions_of(caller.id, before_id, size)

    async def history(
        self, caller: UserProfile, group_id: int, before_id: int, limit: int
    ) -> HistoryPage:
        validation.group_id(group_id)
        if before_id < 0:
            raise InvalidArgument("before_id must not be negative")
        size = validation.page_size(limit, self._limits)
        await self._check_rate("user_reads", caller.id, cost=read_cost(size))
        # Membership and the page are read at once (two round trips in parallel, not one
        # after the other); the page reaches only a member, and a non-member's refusal wins
        # over any error of the page (so hidden and missing groups still answer the same).
        role, page = await asyncio.gather(
            self._require_member(group_id, caller.id),
            self._repo.history(group_id, before_id, size, caller.id),
            return_exceptions=True,
        )
        if isinstance(role, BaseException):
            raise role
        if isinstance(page, BaseException):
            raise page
        return page

    async def set_typing(self, caller: UserProfile, group_id: int, is_typing: bool) -> None:
        """Ephemeral: never stored. Repeated 'typing' within the throttle window is absorbed
        (clients refresh every few seconds; subscribers' state expires by itself)."""
        validation.group_id(group_id)
        key = (caller.id, group_id)
        now = time.monotonic()
        if is_typing and now - self._typing_sent.get(key, -1e9) < self.typing_throttle_seconds:
            return
        # The caller's own budget before the membership lookup: it bounds a flood of refused
        # calls too (typing has no per-group budget a stranger could spend).
        await self._check_rate("user_typing", caller.id)
        await self._require_member(group_id, caller.id)
        if is_typing:
            if len(self._typing_sent) > 50_000:
                self._typing_sent.clear()
            self._typing_sent[key] = now
        else:
            self._typing_sent.pop(key, None)
        await self._publish([TypingChanged(group_id, caller.id, is_typing)])

    # ---- helpers ----

    async def _check_rate(self, rule: str, *identifiers: int, cost: int = 1) -> None:
        if self._rate is not None:
            await self._rate.check(rule, *identifiers, cost=cost)

    async def _require_member(self, group_id: int, user_id: int) -> Role:
        role = await visible_role(self._repo, group_id, user_id)
        if role == Role.NONE:
            raise PermissionDenied(f"you are not a member of group {group_id}")
        return role

    async def _publish_membership(
        self, result: MembershipResult, change: MemberChange, target: int, actor: UserProfile
    ) -> None:
        profile = self._known_profiles.get(target, UserProfile(id=target))
        await self._publish(membership_events(result, change, profile, actor.id))

    async def _publish(self, events: list[ChatEvent]) -> None:
        """Fan out after the commit (a failure is logged: storage is the truth)."""
        await publish_quietly(self._events, events)
