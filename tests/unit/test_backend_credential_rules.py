"""The backend credential's configuration rules and the per-pod ban list, without a server."""

from __future__ import annotations

import time

import pytest

from chat_service.auth.backend import BackendVerifier
from chat_service.auth.bans import BanList
from chat_service.auth.settings import BackendJwtSettings
from chat_service.config import ConfigError, load_settings
from chat_service.domain.errors import Unauthenticated
from chat_service.domain.models import AccessRevoked
from chat_service.wire import convert

USER_SECRET = "u" * 40


def test_the_backend_secret_must_differ_from_the_users_and_be_long() -> None:
    with pytest.raises(ConfigError, match="must differ from JWT_SECRET"):
        load_settings({"JWT_SECRET": USER_SECRET, "BACKEND_JWT_SECRET": USER_SECRET})
    with pytest.raises(ConfigError, match="at least 32"):
        load_settings({"JWT_SECRET": USER_SECRET, "BACKEND_JWT_SECRET": "short"})
    ok = load_settings({"JWT_SECRET": USER_SECRET, "BACKEND_JWT_SECRET": "b" * 32})
    assert ok.backend_jwt.enabled


def test_without_a_backend_key_every_backend_call_is_refused() -> None:
    with pytest.raises(Unauthenticated, match="backend API is disabled"):
        BackendVerifier(BackendJwtSettings()).verify("anything")


def test_the_ban_list_takes_bans_and_their_lifting_from_broker_entries() -> None:
    bans = BanList()
    later = int(time.time() * 1000) + 60_000

    def entry(user_id: int, until: int) -> tuple[int, bytes]:
        return 0, convert.event(AccessRevoked(user_id, "x", until)).SerializeToString()

    bans.observe([entry(1, 0), entry(2, later), (5, b"\x0a\x00"), entry(3, 1)])
    assert bans.is_banned(1) and bans.is_banned(2)
    assert not bans.is_banned(3)  # lapsed long ago
    bans.observe([entry(1, -1)])
    assert not bans.is_banned(1)
