"""Input limits, checked before anything is stored. Each failure names the limit it broke."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from chat_service.domain.errors import InvalidArgument
from chat_service.domain.limits import Limits
from chat_service.domain.models import MessageKind

# Bidirectional controls: they reorder what is displayed ("invoice\u202efdp.bat" shows as
# "invoicetab.pdf"), so names that others read must not carry them.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")


def _has_control_chars(text: str, allow_newlines: bool) -> bool:
    for ch in text:
        if allow_newlines and ch in "\n\t":
            continue
        if unicodedata.category(ch) in {"Cc", "Cs"}:
            return True
    return False


def unsafe_name_chars(text: str) -> str | None:
    """What makes `text` unfit for a name others read (group names, descriptions, file
    names, display names): a control character (NUL included), a lone surrogate or a bidi
    control. None when it is fine."""
    for ch in text:
        if ch in BIDI_CONTROLS:
            return f"a bidirectional control character (U+{ord(ch):04X})"
        if unicodedata.category(ch) in {"Cc", "Cs"}:
            return f"a control character (U+{ord(ch):04X})"
    return None


def safe_name(text: str, field: str, *, allow_newlines: bool = False) -> str:
    """`text` unchanged, or InvalidArgument naming the field and the offending character."""
    reason = unsafe_name_chars(text.replace("\n", "").replace("\t", "") if allow_newlines
                               else text)
    if reason is not None:
        raise InvalidArgument(f"{field} contains {reason}")
    return text


def group_name(name: str, limits: Limits) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise InvalidArgument("group name is required")
    if len(cleaned) > limits.group_name_max:
        raise InvalidArgument(
            f"group name is {len(cleaned)} characters; the limit is {limits.group_name_max}"
        )
    return safe_name(cleaned, "group name")


def group_description(description: str, limits: Limits) -> str:
    cleaned = description.strip()
    if len(cleaned) > limits.group_description_max:
        raise InvalidArgument(
            f"group description is {len(cleaned)} characters; "
            f"the limit is {limits.group_description_max}"
        )
    return safe_name(cleaned, "group description", allow_newlines=True)


def group_id(value: int) -> int:
    if value <= 0:
        raise InvalidArgument("group_id must be a positive integer")
    return value


def user_id(value: int, field: str = "user_id") -> int:
    if value <= 0:
        raise InvalidArgument(f"{field} must be a positive integer")
    return value


def member_ids(values: list[int], limits: Limits) -> list[int]:
    unique = list(dict.fromkeys(values))
    for v in unique:
        user_id(v, "member_ids")
    if len(unique) + 1 > limits.members_per_group_max:
        raise InvalidArgument(
            f"a group may have at most {limits.members_per_group_max} members "
            f"({len(unique)} member_ids given plus the creator)"
        )
    return unique


def message_content(content: str, kind: MessageKind, limits: Limits) -> str:
    """TEXT needs content; IMAGE and FILE may carry an optional caption."""
    if kind == MessageKind.SYSTEM:
        raise InvalidArgument("SYSTEM messages are written by the server, not by clients")
    if kind not in (MessageKind.TEXT, MessageKind.IMAGE, MessageKind.FILE):
        raise InvalidArgument(f"unknown message type {int(kind)}")
    if kind == MessageKind.TEXT and not content.strip():
        raise InvalidArgument("message content is empty")
    if len(content) > limits.message_max_chars:
        raise InvalidArgument(
            f"message is {len(content)} characters; the limit is {limits.message_max_chars}"
        )
    if _has_control_chars(content, allow_newlines=True):
        raise InvalidArgument("message contains control characters")
    return content


def client_msg_id(value: str, limits: Limits) -> str:
    if len(value) > limits.client_msg_id_max:
        raise InvalidArgument(
            f"client_msg_id is {len(value)} characters; the limit is {limits.client_msg_id_max}"
        )
    if value and (not value.isprintable() or value != value.strip()):
        raise InvalidArgument("client_msg_id must be printable with no surrounding spaces")
    return value


def page_size(limit: int, limits: Limits) -> int:
    if limit < 0:
        raise InvalidArgument("limit must not be negative")
    if limit == 0:
        return limits.history_page_default
    return min(limit, limits.history_page_max)


def message_kind(value: int) -> MessageKind:
    try:
        return MessageKind(value)
    except ValueError as exc:
        raise InvalidArgument(f"unknown message type {value}") from exc


# ---- display data from token claims: cleaned, never refused ----
# The Laravel app owns its users' names; a strange one must not lock its owner out of chat,
# so claims are cleaned rather than refused (and nothing left can make storing them fail).

DISPLAY_NAME_MAX = 100
EMAIL_MAX = 254
AVATAR_URL_MAX = 2048
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(?:\.[^@\s.]+)+")
_EMAIL_FORBIDDEN = frozenset('<>()[]\\,;:"')


def display_text(value: str, max_chars: int = DISPLAY_NAME_MAX) -> str:
    """`value` without control characters (NUL included; line breaks and tabs become
    spaces), lone surrogates and bidi controls, whitespace runs collapsed to one space,
    trimmed and capped at `max_chars`."""
    kept = []
    for ch in value:
        if ch in BIDI_CONTROLS:
            continue
        category = unicodedata.category(ch)
        if category == "Cc":
            if ch.isspace():
                kept.append(" ")  # "Alice\nSmith" reads as "Alice Smith"
        elif category != "Cs":
            kept.append(ch)
    return " ".join("".join(kept).split())[:max_chars].strip()


def plausible_email(value: str) -> str:
    """`value` trimmed when it looks like an address (one @, a dotted domain, no spaces,
    controls or bidi controls, at most 254 characters), else ""."""
    candidate = value.strip()
    if (
        len(candidate) > EMAIL_MAX
        or unsafe_name_chars(candidate) is not None
        or any(ch in _EMAIL_FORBIDDEN for ch in candidate)
        or not _EMAIL.fullmatch(candidate)
    ):
        return ""
    return candidate


def http_url(value: str, max_chars: int = AVATAR_URL_MAX) -> str:
    """`value` trimmed when it is an absolute http(s) URL with a host (no spaces, controls
    or bidi controls), else "" — so no `javascript:` or `data:` avatar reaches a client."""
    candidate = value.strip()
    if (
        not candidate
        or len(candidate) > max_chars
        or unsafe_name_chars(candidate) is not None
        or any(ch.isspace() for ch in candidate)
    ):
        return ""
    try:
        parts = urlsplit(candidate)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return ""
    if parts.scheme.lower() not in ("http", "https") or not host:
        return ""
    return candidate
