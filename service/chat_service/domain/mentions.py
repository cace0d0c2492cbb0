"""`@name` mentions, resolved against the group's members when a message is posted."""

from __future__ import annotations

from collections.abc import Sequence

from chat_service.domain.models import Mention

ALL = "all"


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch in "_-."


def find_mentions(
    text: str, members: Sequence[tuple[int, str]], *, allow_all: bool, author_id: int
) -> list[Mention]:
    """Structured mentions in `text`. The longest member name after an `@` wins; names are
    matched case-insensitively and must end at a word boundary. Ambiguous names (two members
    called the same) and unknown names stay plain text; `@all` only counts when allowed."""
    by_name: dict[str, int | None] = {}
    for member_id, name in members:
        key = name.strip().lower()
        if not key:
            continue
        by_name[key] = None if key in by_name and by_name[key] != member_id else member_id
    names = sorted(by_name, key=len, reverse=True)
    lowered = text.lower()
    found: list[Mention] = []
    i = 0
    uid: int | None
    while True:
        i = text.find("@", i)
        if i < 0:
            return found
        if i > 0 and _is_word(text[i - 1]):  # an e-mail address, not a mention
            i += 1
            continue
        start = i + 1
        matched = False
        candidates = ([ALL] if allow_all else []) + names
        for name in candidates:
            end = start + len(name)
            if lowered.startswith(name, start) and (end == len(text) or not _is_word(text[end])):
                uid = 0 if name == ALL else by_name[name]
                if uid is not None and uid != author_id:
                    found.append(Mention(user_id=uid, offset=i, length=end - i))
                i = end
                matched = True
                break
        if not matched:
            i += 1
