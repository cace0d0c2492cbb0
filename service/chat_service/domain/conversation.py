"""Values of threads, search and mark-unread (the use cases in threads.py, search.py and
receipts.py; their events, ThreadReplied and PinChanged, are in models.py with the others)."""

from __future__ import annotations

from dataclasses import dataclass

from chat_service.domain.models import Message


@dataclass(frozen=True, slots=True)
class ThreadLink:
    """Where a thread reply goes: its thread's parent (id, author, seq) and whether it is
    also shown in the main timeline."""

    parent_id: int
    parent_author: int
    parent_seq: int
    also_in_group: bool = False


@dataclass(frozen=True, slots=True)
class ThreadPage:
    parent: Message
    replies: list[Message]
    has_more: bool
    read_seq: int  # the viewer's read position in the thread (0: not a participant)
    unread_count: int


@dataclass(frozen=True, slots=True)
class ThreadRead:
    read_seq: int
    unread_count: int  # in the thread
    group_thread_unread: int  # in all the user's threads of the group


@dataclass(frozen=True, slots=True)
class SearchHit:
    message: Message
    snippet: str  # plain text; highlights are (offset, length) in code points
    highlights: tuple[tuple[int, int], ...]
    rank: float


@dataclass(frozen=True, slots=True)
class SearchPage:
    hits: list[SearchHit]
    next_offset: int  # 0 on the last page


@dataclass(frozen=True, slots=True)
class UnreadResult:
    read_seq: int
    unread_count: int
    mention_count: int
    private: bool
