"""Input rules of the backend API and the moderation calls (issue 15): profiles in bulk,
group cards, reasons, durations. Refusals name the item and the rule (INVALID_ARGUMENT)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from chat_service.domain import validation
from chat_service.domain.errors import InvalidArgument
from chat_service.domain.models import UserProfile

UPSERT_BATCH_MAX = 100
MEMBERS_BATCH_MAX = 100
CUSTOM_JSON_MAX_BYTES = 4096
REASON_MAX = 500
DURATION_MAX_SECONDS = 10 * 366 * 24 * 3600


def profiles(users: Sequence[UserProfile]) -> list[UserProfile]:
    """1 to 100 distinct users; name up to 100 characters (cleaned), avatar an http(s) URL,
    e-mail plausible, custom data a JSON object of at most 4 KB. Each broken rule is refused
    (not cleaned): the backend should learn its data is wrong."""
    if not users:
        raise InvalidArgument("users must not be empty")
    if len(users) > UPSERT_BATCH_MAX:
        raise InvalidArgument(f"at most {UPSERT_BATCH_MAX} users per call ({len(users)} given)")
    seen: set[int] = set()
    out: list[UserProfile] = []
    for i, u in enumerate(users):
        where = f"users[{i}] (id {u.id})"
        validation.user_id(u.id, f"users[{i}].id")
        if u.id in seen:
            raise InvalidArgument(f"{where}: id given twice")
        seen.add(u.id)
        name = validation.display_text(u.name, 10_000)
        if len(name) > validation.DISPLAY_NAME_MAX:
            raise InvalidArgument(
                f"{where}: name is {len(name)} characters; the limit is "
                f"{validation.DISPLAY_NAME_MAX}"
            )
        out.append(UserProfile(
            id=u.id,
            name=name,
            email=_email(u.email, where),
            avatar=avatar(u.avatar, where),
            custom_json=custom_json(u.custom_json, where),
        ))
    return out


def avatar(value: str, where: str = "avatar") -> str:
    if not value.strip():
        return ""
    url = validation.http_url(value)
    if not url:
        raise InvalidArgument(
            f"{where}: avatar must be an absolute http(s) URL of at most "
            f"{validation.AVATAR_URL_MAX} characters"
        )
    return url


def _email(value: str, where: str) -> str:
    if not value.strip():
        return ""
    email = validation.plausible_email(value)
    if not email:
        raise InvalidArgument(f"{where}: email is not a plausible address")
    return email


def custom_json(value: str, where: str) -> str:
    if not value:
        return ""
    size = len(value.encode())
    if size > CUSTOM_JSON_MAX_BYTES:
        raise InvalidArgument(
            f"{where}: custom_json is {size} bytes; the limit is {CUSTOM_JSON_MAX_BYTES}"
        )
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise InvalidArgument(f"{where}: custom_json is not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise InvalidArgument(f"{where}: custom_json must be a JSON object")
    return json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))


def user_batch(user_ids: Sequence[int]) -> list[int]:
    unique = list(dict.fromkeys(user_ids))
    if not unique:
        raise InvalidArgument("user_ids must not be empty")
    if len(unique) > MEMBERS_BATCH_MAX:
        raise InvalidArgument(f"at most {MEMBERS_BATCH_MAX} user_ids per call")
    for uid in unique:
        validation.user_id(uid, "user_ids")
    return unique


def reason(value: str) -> str:
    cleaned = validation.display_text(value, 10_000)
    if len(cleaned) > REASON_MAX:
        raise InvalidArgument(f"reason is {len(cleaned)} characters; the limit is {REASON_MAX}")
    return cleaned


def duration(seconds: int) -> int:
    if not 0 <= seconds <= DURATION_MAX_SECONDS:
        raise InvalidArgument(
            f"duration_seconds must be 0 (until lifted) to {DURATION_MAX_SECONDS}"
        )
    return seconds
