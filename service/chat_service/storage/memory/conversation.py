"""Threads, search and pins in memory: `ThreadStore`, `SearchStore` and `PinStore`, as
PostgreSQL's threads.py, search.py and pins.py (thread replies are stored by the
repository's send path). Search is a plain token match: every query word (`-word` excluded)
must occur; rank is the number of occurrences; the same membership, deleted and SYSTEM rules
and the same bounded candidates (the newest matches of each group) as PostgreSQL's."""

from __future__ import annotations

import re

from chat_service.domain.conversation import (
    SearchHit,
    ThreadRead,
)
from chat_service.domain.errors import NotFound, ResourceExhausted
from chat_service.domain.models import (
    Message,
    MessageKind,
)
from chat_service.domain.search import SNIPPET_START, SNIPPET_STOP, parse_snippet
from chat_service.storage.memory.state import MemoryState, MessageRow, now_ms

_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


class MemoryConversation:
    state: MemoryState

    # ---- threads ----

    async def thread_replies(
        self, parent_id: int, after_seq: int, limit: int, viewer: int
    ) -> tuple[list[Message], bool]:
        parent = self.state.messages.get(parent_id)
        rows = [] if parent is None else [
            m for m in self.state.by_group.get(parent.group_id, ())
            if m.thread_parent_id == parent_id and m.seq > after_seq
        ]
        return [self.state.show(m, viewer) for m in rows[:limit]], len(rows) > limit

    async def thread_position(self, parent_id: int, user_id: int) -> tuple[int, int]:
        read = self.state.participants.get(parent_id, {}).get(user_id)
        if read is None:
            return 0, 0
        return read, self.state.thread_unread(parent_id, user_id)

    async def mark_thread_read(self, parent_id: int, user_id: int, seq: int) -> ThreadRead:
        who = self.state.participants.get(parent_id, {})
        if user_id not in who:
            return ThreadRead(0, 0, 0)
        parent = self.state.messages[parent_id]
        last = max((m.seq for m in self.state.by_group.get(parent.group_id, ())
                    if m.thread_parent_id == parent_id), default=0)
        who[user_id] = max(who[user_id], min(seq or last, last))
        return ThreadRead(
            who[user_id],
            self.state.thread_unread(parent_id, user_id),
            self.state.group_thread_unread(parent.group_id, user_id),
        )

    # ---- search ----

    async def search(
        self, user_id: int, group_id: int, query: str, limit: int, offset: int,
        candidates: int,
    ) -> list[SearchHit]:
        wanted = [w for w in _words(" ".join(t for t in query.split() if not t.startswith("-")))
                  if w != "or"]
        unwanted = {w for t in query.split() if t.startswith("-") for w in _words(t)}
        if not wanted:
            return []
        groups = [g for g in self.state.groups.values()
                  if user_id in g.members and group_id in (0, g.id)]
        per_group = max(offset + limit, candidates // max(1, len(groups)))
        found: list[tuple[int, MessageRow]] = []
        for group in groups:
            matches: list[tuple[int, MessageRow]] = []
            for m in reversed(self.state.by_group.get(group.id, ())):
                if m.deleted or m.kind == MessageKind.SYSTEM:
                    continue
                words = _words(m.content)
                if all(w in words for w in wanted) and not unwanted & set(words):
                    matches.append((sum(words.count(w) for w in wanted), m))
            found.extend(matches[:per_group])  # the newest matches of each group
        found.sort(key=lambda hit: (-hit[0], -hit[1].id))
        hits = []
        for rank, m in found[offset:offset + limit]:
            marked = re.sub(
                r"\w+",
                lambda w: f"{SNIPPET_START}{w.group()}{SNIPPET_STOP}"
                if w.group().lower() in wanted else w.group(),
                m.content,
            )
            text, marks = parse_snippet(marked)
            hits.append(SearchHit(self.state.show(m, user_id), text, marks, float(rank)))
        return hits

    # ---- pins ----

    async def set_pin(
        self, message: Message, actor_id: int, pinned: bool, max_pins: int
    ) -> tuple[Message, bool]:
        row = self.state.messages.get(message.id)
        if row is None:
            raise NotFound(f"message {message.id} does not exist")
        changed = bool(row.pinned_by) != pinned
        if changed and pinned:
            count = sum(1 for m in self.state.by_group.get(row.group_id, ()) if m.pinned_by)
            if count >= max_pins:
                raise ResourceExhausted(
                    f"group {row.group_id} has {count} pinned messages (the limit is "
                    f"{max_pins}); unpin one first"
                )
        if changed:
            row.pinned_by = actor_id if pinned else 0
            row.pinned_at_ms = now_ms() if pinned else 0
            row.pin_tick = self.state.tick() if pinned else 0
            self.state.bump_update(row)
        return self.state.show(row, actor_id), changed

    async def pinned(self, group_id: int, viewer: int) -> list[Message]:
        rows = sorted((m for m in self.state.by_group.get(group_id, ()) if m.pinned_by),
                      key=lambda m: -m.pin_tick)
        return [self.state.show(m, viewer) for m in rows]
