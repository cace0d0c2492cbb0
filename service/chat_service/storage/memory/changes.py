"""Edits, deletes and reactions in memory: `MessageChangeStore`, as PostgreSQL's changes.py.
Each change takes the next update_seq of its group."""

from __future__ import annotations

from collections.abc import Sequence

from chat_service.domain.errors import NotFound, PermissionDenied, ResourceExhausted
from chat_service.domain.models import Mention, Message
from chat_service.storage.memory.state import MemoryState, MessageRow, now_ms


class MemoryMessageChanges:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def _row(self, message: Message) -> MessageRow:
        row = self.state.messages.get(message.id)
        if row is None:
            raise NotFound(f"message {message.id} does not exist")
        group = self.state.groups.get(row.group_id)
        if group is not None and group.archived:
            raise PermissionDenied(f"group {row.group_id} is archived: it is read-only")
        return row

    async def edit(
        self, message: Message, content: str, mentions: Sequence[Mention]
    ) -> Message:
        row = self._row(message)
        row.content, row.mentions, row.edited_at_ms = content, tuple(mentions), now_ms()
        self.state.bump_update(row)
        return self.state.show(row)

    async def delete(self, message: Message) -> tuple[Message, str]:
        """Leave a tombstone: the seq stays (and a thread under it), content, mentions,
        reactions, a pin and the attachment reference go. Returns the attachment id whose
        blob must be purged ('' if none)."""
        row = self._row(message)
        attachment_id = row.attachment_id
        row.content, row.mentions, row.attachment_id, row.deleted = "", (), "", True
        row.pinned_by = row.pinned_at_ms = row.pin_tick = 0
        row.reactions.clear()
        self.state.bump_update(row)
        return self.state.show(row), attachment_id

    async def react(
        self, message: Message, user_id: int, emoji: str, add: bool, max_distinct: int
    ) -> tuple[Message, bool]:
        """Add or remove one reaction; (message as the reactor sees it, whether it changed)."""
        row = self._row(message)
        mine = (user_id, emoji)
        if add:
            known = {e for _, e in row.reactions}
            if emoji not in known and len(known) >= max_distinct:
                raise ResourceExhausted(
                    f"message {message.id} already has {max_distinct} different reactions "
                    "(the limit); react with one of those"
                )
            changed = mine not in row.reactions
            if changed:
                row.reactions.append(mine)
        else:
            changed = mine in row.reactions
            if changed:
                row.reactions.remove(mine)
        if changed:
            self.state.bump_update(row)
        return self.state.show(row, user_id), changed
