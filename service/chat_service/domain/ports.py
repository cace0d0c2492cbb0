"""Interfaces the domain needs from the outside world; adapters implement them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from chat_service.domain.conversation import (
    SearchHit,
    ThreadLink,
    ThreadRead,
    UnreadResult,
)
from chat_service.domain.models import (
    ActionKind,
    ChatEvent,
    ErasedContent,
    Group,
    GroupChanges,
    HistoryPage,
    Member,
    MemberChange,
    MembershipResult,
    Mention,
    Message,
    MessageKind,
    ModerationAction,
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
        via_backend: bool = False,
        thread: ThreadLink | None = None,
    ) -> PostResult | None:
        """Store a message; None when the sender is not a member (or no such group).
        PermissionDenied when the member may not post (muted, group archived).
        With `thread`, a reply in that thread: in the same transaction the parent's summary
        (reply count, last reply, participants) changes and takes the next update_seq, and
        the sender becomes a participant who has read up to their reply."""
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


class ThreadStore(Protocol):
    async def thread_replies(
        self, parent_id: int, after_seq: int, limit: int, viewer: int
    ) -> tuple[list[Message], bool]:
        """Replies with seq > after_seq, in seq order (at most `limit`), and whether more
        follow."""
        ...

    async def thread_position(self, parent_id: int, user_id: int) -> tuple[int, int]:
        """(read_seq, unread replies by others) of a participant; (0, 0) for anyone else."""
        ...

    async def mark_thread_read(self, parent_id: int, user_id: int, seq: int) -> ThreadRead:
        """Move a participant's position forward to `seq` (0: the last reply), never back;
        a non-participant's stays (0, 0)."""
        ...


class SearchStore(Protocol):
    async def search(
        self, user_id: int, group_id: int, query: str, limit: int, offset: int,
        candidates: int,
    ) -> list[SearchHit]:
        """Best matches first among the user's current groups (or `group_id` of them):
        never deleted messages, SYSTEM messages or text edited away. The ranking covers the
        newest max(offset + limit, candidates / groups) matches of each group. Snippets mark
        each match between SNIPPET_START and SNIPPET_STOP (domain/search.py)."""
        ...


class PinStore(Protocol):
    async def set_pin(
        self, message: Message, actor_id: int, pinned: bool, max_pins: int
    ) -> tuple[Message, bool]:
        """Pin or unpin; (the message, whether it changed). A change takes the group's next
        update_seq. ResourceExhausted when `max_pins` are pinned already."""
        ...

    async def pinned(self, group_id: int, viewer: int) -> list[Message]:
        """The group's pinned messages, most recently pinned first."""
        ...


class ChatRepository(
    UserStore, GroupStore, MembershipStore, MessageStore, ThreadStore, SearchStore, PinStore,
    Protocol,
):
    """Durable storage of the chat use cases (PostgreSQL in production): one object that is
    every store above. Receipts and message changes have stores of their own below."""


# ---- issue 15: the app's backend, group administration, moderation, GDPR ----


class DirectoryStore(Protocol):
    async def upsert_directory(self, users: Sequence[UserProfile]) -> list[int]:
        """Store the profiles as given; the ids whose stored profile changed."""
        ...

    async def profile_of(self, user_id: int) -> UserProfile: ...

    async def anonymise_user(self, user_id: int, *, erased: bool) -> None: ...


class GroupAdminStore(Protocol):
    async def update_group(self, group_id: int, changes: GroupChanges) -> bool: ...

    async def group_attachment_ids(self, group_id: int) -> list[str]: ...

    async def delete_group(self, group_id: int) -> bool: ...

    async def post_from_backend(
        self, group_id: int, content: str, client_msg_id: str
    ) -> PostResult | None:
        """A SYSTEM message by the backend; None when the group is missing or archived."""
        ...


class DirectStore(Protocol):
    async def find_direct(self, user_a: int, user_b: int) -> int | None: ...

    async def get_or_create_direct(
        self, caller: UserProfile, other_id: int
    ) -> tuple[int, Message | None]:
        """Exactly one conversation per pair, even under concurrent calls on many pods."""
        ...


class ModerationStore(Protocol):
    async def ban_from_group(
        self, group_id: int, user_id: int, until_ms: int, reason: str
    ) -> None: ...

    async def unban_from_group(self, group_id: int, user_id: int) -> bool: ...

    async def silence(self, group_id: int, user_id: int, until_ms: int | None) -> bool: ...

    async def record_action(
        self,
        *,
        group_id: int,
        user_id: int,
        actor_id: int,
        kind: ActionKind,
        reason: str,
        expires_at_ms: int = 0,
        message_id: int = 0,
    ) -> ModerationAction: ...

    async def list_actions(
        self, group_id: int, before_id: int, limit: int
    ) -> tuple[list[ModerationAction], bool]: ...

    async def set_user_ban(self, user_id: int, until_ms: int | None, reason: str) -> None: ...

    async def banned_users(self) -> dict[int, int]:
        """User id -> banned until (ms; 0: for good), erased users included."""
        ...


class ErasureStore(Protocol):
    async def attachment_ids_of_user(self, user_id: int) -> list[str]: ...

    async def erase_user_content(self, user_id: int, *, tombstone: bool) -> ErasedContent: ...

    async def export_records(self, user_id: int) -> list[dict[str, Any]]: ...

    async def export_messages(
        self, user_id: int, after_id: int, limit: int
    ) -> list[dict[str, Any]]: ...


class AdminRepository(
    ChatRepository, DirectoryStore, GroupAdminStore, DirectStore, ModerationStore,
    ErasureStore, Protocol,
):
    """Everything the issue-15 use cases need: the chat repository and the stores above."""


class EventPublisher(Protocol):
    """Carries events to every subscriber of a group, wherever it is connected."""

    async def publish(self, events: Sequence[ChatEvent]) -> None: ...


GroupsOf = Callable[[int], Awaitable[list[int]]]
"""A user's group ids: where presence events of that user are addressed."""


class PresenceTracker(Protocol):
    """Who is online, across pods; told when this pod's streams open and close."""

    async def online_users(self, user_ids: Sequence[int]) -> set[int]: ...

    async def connected(self, user_id: int, group_ids: Sequence[int] | None = None) -> None:
        """A stream opened; `group_ids` are the user's groups when the caller knows them.
        The stream counts from the call on, before anything is awaited: a caller cancelled
        while this waits still pairs it with `disconnected`."""
        ...

    async def disconnected(self, user_id: int) -> None: ...


class Presence(PresenceTracker, Protocol):
    """A PresenceTracker with a lifecycle, as the composition root holds it. Twins:
    `presence.local.LocalPresence` (one process) and `presence.redis_presence.RedisPresence`
    (across pods); tests/contract/test_presence_contract.py checks both against one body.

    Guarantees:
    - A user is online from their first `connected` until as many `disconnected` calls
      (streams are counted: two streams, one closed, still online). `online_users` answers
      for exactly the ids asked, in no particular order; an empty question is an empty set.
    - The change of state, and only the change, is published as one `PresenceChanged`
      through the EventPublisher the twin was built with: `online` at the first connect,
      offline at the last disconnect, addressed to `group_ids` when `connected` was given
      them, otherwise to the user's groups as `GroupsOf` says at that moment. Reconnecting
      while still connected elsewhere publishes nothing.
    - `stop()` takes this process's users offline at once and announces it (in the Redis
      twin: unless another pod still holds a stream of theirs).
    - Presence is best effort: a failure to publish or to reach the store is logged, never
      raised to the stream that connected. Nothing survives a restart of the process (memory)
      except what other pods keep refreshing (Redis: a pod that dies without `stop()` leaves
      its users online until `PRESENCE_TTL_SECONDS` pass, then one pod announces them offline).
    """

    def start(self) -> None:
        """Begin background work (Redis: heartbeats and expiry). Returns at once."""
        ...

    async def stop(self) -> None: ...


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

    async def mark_unread(
        self, group_id: int, user_id: int, message_id: int
    ) -> UnreadResult | None:
        """Move the read position back to just before the message (never forward); None
        when the user is not a member or the message is not in the group."""
        ...

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


class BannedUsers(Protocol):
    """Users who may not use the chat now: banned backend-wide (until the ban ends) or
    erased for good (auth/bans.py's per-pod list)."""

    def is_banned(self, user_id: int) -> bool: ...


class AttachmentPurger(Protocol):
    async def purge(self, attachment_id: str) -> None: ...


class RateLimits(Protocol):
    """Raises ResourceExhausted (naming the limit and when to retry) when over a rule."""

    async def check(self, rule: str, *identifiers: int, cost: int = 1) -> None: ...
