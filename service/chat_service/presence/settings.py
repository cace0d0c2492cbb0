"""Presence settings: online and typing state, and open streams per user."""

from __future__ import annotations

from dataclasses import dataclass

from chat_service.envconfig import var


@dataclass(frozen=True)
class PresenceSettings:
    ttl_seconds: int = var("PRESENCE_TTL_SECONDS", 30)
    typing_ttl_seconds: float = var("TYPING_TTL_SECONDS", 6.0)
    max_streams_per_user: int = var("MAX_STREAMS_PER_USER", 20)
