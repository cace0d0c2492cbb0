"""Read positions (one high-water mark per member), mute and receipt privacy in memory:
`ReceiptStore`, as PostgreSQL's receipts.py."""

from __future__ import annotations

from dataclasses import dataclass

from chat_service.domain.conversation import UnreadResult
from chat_service.domain.models import UserProfile
from chat_service.storage.memory.state import MemberRow, MemoryState


@dataclass(frozen=True)
class ReadResult:
    read_seq: int
    unread_count: int
    moved: bool
    private: bool


class MemoryReceipts:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def _member(self, group_id: int, user_id: int) -> MemberRow | None:
        group = self.state.groups.get(group_id)
        return None if group is None else group.members.get(user_id)

    async def mark_read(self, group_id: int, user_id: int, seq: int) -> ReadResult | None:
        """Move the read position forward to `seq` (0 = the newest message); never back."""
        me = self._member(group_id, user_id)
        if me is None:
            return None
        last = self.state.groups[group_id].last_seq
        old = me.read_seq
        me.read_seq = max(old, min(seq or last, last))
        return ReadResult(
            read_seq=me.read_seq,
            unread_count=self.state.unread(group_id, user_id, me.read_seq),
            moved=me.read_seq > old,
            private=self.state.user(user_id).private_receipts,
        )

    async def mark_unread(
        self, group_id: int, user_id: int, message_id: int
    ) -> UnreadResult | None:
        """Move the read position back to just before the message; never forward."""
        me = self._member(group_id, user_id)
        target = self.state.messages.get(message_id)
        if me is None or target is None or target.group_id != group_id:
            return None
        me.read_seq = min(me.read_seq, target.seq - 1)
        return UnreadResult(
            read_seq=me.read_seq,
            unread_count=self.state.unread(group_id, user_id, me.read_seq),
            mention_count=self.state.mentions_unread(group_id, user_id, me.read_seq),
            private=self.state.user(user_id).private_receipts,
        )

    async def readers(
        self, group_id: int, message_id: int
    ) -> tuple[list[UserProfile], int] | None:
        """Members who have read the message (public receipts only), and how many have not."""
        message = self.state.messages.get(message_id)
        if message is None or message.group_id != group_id:
            return None
        others = sorted((u, m) for u, m in self.state.groups[group_id].members.items()
                        if u != message.user_id)
        readers = [self.state.profile(u) for u, m in others
                   if m.read_seq >= message.seq and not self.state.user(u).private_receipts]
        return readers, sum(1 for _, m in others if m.read_seq < message.seq)

    async def set_muted(self, group_id: int, user_id: int, muted: bool) -> bool:
        me = self._member(group_id, user_id)
        if me is not None:
            me.muted = muted
        return me is not None

    async def private_receipts(self, user_id: int, value: bool | None) -> bool:
        if value is not None:
            self.state.user(user_id).private_receipts = value
        row = self.state.users.get(user_id)
        return row is not None and row.private_receipts
