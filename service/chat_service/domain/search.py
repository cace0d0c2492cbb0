"""Message search: over the caller's current groups only, best match first, in bounded pages.

Stores mark each match in a snippet between SNIPPET_START and SNIPPET_STOP (characters no
message can contain: validation refuses control characters); `parse_snippet` turns that into
plain text and highlight ranges, so clients escape the text and draw the highlights
themselves (nothing to inject). The page token is opaque to clients: the offset of the next
page, at most `search_results_max` deep.
"""

from __future__ import annotations

import base64
import binascii

from chat_service.domain import validation
from chat_service.domain.access import visible_role
from chat_service.domain.conversation import SearchPage
from chat_service.domain.errors import InvalidArgument, PermissionDenied
from chat_service.domain.limits import Limits
from chat_service.domain.models import (
    Role,
    UserProfile,
)
from chat_service.domain.ports import GroupAccess, RateLimits, SearchStore

SNIPPET_START = "\x01"
SNIPPET_STOP = "\x02"
SNIPPET_MAX_CHARS = 300


def parse_snippet(marked: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """(plain text, (offset, length) of each highlight in code points), cut to
    SNIPPET_MAX_CHARS."""
    text: list[str] = []
    marks: list[tuple[int, int]] = []
    start = -1
    for ch in marked:
        if ch == SNIPPET_START:
            start = len(text)
        elif ch == SNIPPET_STOP:
            if start >= 0 and len(text) > start:
                marks.append((start, len(text) - start))
            start = -1
        else:
            text.append(ch)
    plain = "".join(text)[:SNIPPET_MAX_CHARS]
    kept = tuple(
        (o, min(n, SNIPPET_MAX_CHARS - o)) for o, n in marks if o < SNIPPET_MAX_CHARS
    )
    return plain, kept


def page_token(offset: int) -> str:
    return "" if offset <= 0 else base64.urlsafe_b64encode(f"o{offset}".encode()).decode()


def offset_of(token: str) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
        if raw.startswith("o") and raw[1:].isdigit():
            return int(raw[1:])
    except (binascii.Error, UnicodeError, ValueError):
        pass
    raise InvalidArgument("page_token is not one this server issued")


class Search:
    def __init__(
        self,
        store: SearchStore,
        groups: GroupAccess,
        limits: Limits,
        rate: RateLimits | None = None,
    ) -> None:
        self._store = store
        self._groups = groups
        self._limits = limits
        self._rate = rate

    def _query(self, query: str) -> str:
        text = " ".join(query.split())
        if not text:
            raise InvalidArgument("query is empty")
        if len(text) > self._limits.search_query_max_chars:
            raise InvalidArgument(
                f"query is {len(text)} characters; the limit is "
                f"{self._limits.search_query_max_chars}"
            )
        if validation.unsafe_name_chars(text) is not None:
            raise InvalidArgument("query contains control characters")
        return text

    async def search(
        self, caller: UserProfile, query: str, group_id: int, limit: int, token: str
    ) -> SearchPage:
        text = self._query(query)
        if group_id < 0:
            raise InvalidArgument("group_id must not be negative")
        if limit < 0:
            raise InvalidArgument("limit must not be negative")
        size = min(limit or self._limits.search_page_default, self._limits.search_page_max)
        offset = offset_of(token)
        deepest = self._limits.search_results_max
        if offset >= deepest:
            raise InvalidArgument(f"search results are served {deepest} deep at most")
        size = min(size, deepest - offset)
        if self._rate is not None:
            await self._rate.check("user_search", caller.id)
        if group_id and await visible_role(self._groups, group_id, caller.id) == Role.NONE:
            raise PermissionDenied(f"you are not a member of group {group_id}")
        hits = await self._store.search(
            caller.id, group_id, text, size + 1, offset, self._limits.search_candidates
        )
        more = len(hits) > size and offset + size < deepest
        return SearchPage(hits[:size], offset + size if more else 0)
