"""Input limits, checked before anything is stored. Each failure names the limit it broke."""

from __future__ import annotations

import unicodedata

from chat_service.config import Limits
from chat_service.domain.errors import InvalidArgument
from chat_service.domain.models import MessageKind


def _has_control_chars(text: str, allow_newlines: bool) -> bool:
    for ch in text:
        if allow_newlines and ch in "\n\t":
            continue
        if unicodedata.category(ch) in {"Cc", "Cs"}:
            return True
    return False


def group_name(name: str, limits: Limits) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise InvalidArgument("group name is required")
    if len(cleaned) > limits.group_name_max:
        raise InvalidArgument(
            f"group name is {len(cleaned)} characters; the limit is {limits.group_name_max}"
        )
    if _has_control_chars(cleaned, allow_newlines=False):
        raise InvalidArgument("group name contains control characters")
    return cleaned


def group_description(description: str, limits: Limits) -> str:
    cleaned = description.strip()
    if len(cleaned) > limits.group_description_max:
        raise InvalidArgument(
            f"group description is {len(cleaned)} characters; "
            f"the limit is {limits.group_description_max}"
        )
    return cleaned


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
