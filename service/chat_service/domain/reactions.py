"""Emoji reactions: what counts as a reaction."""

from __future__ import annotations

import emoji

from chat_service.domain.errors import InvalidArgument

MAX_EMOJI_CHARS = 32


def validate_emoji(value: str) -> str:
    """A single real emoji (including skin tones and ZWJ sequences), nothing else."""
    candidate = value.strip()
    if not candidate:
        raise InvalidArgument("emoji is required")
    if len(candidate) > MAX_EMOJI_CHARS or not emoji.is_emoji(candidate):
        raise InvalidArgument(f"{candidate[:MAX_EMOJI_CHARS]!r} is not a single emoji")
    return candidate
