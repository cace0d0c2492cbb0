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
from chat_service.fanout.revocation import RevocationSink
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


class _Sub:
    def __init__(self) -> None:
        self.closed: str | None = None

    def close(self, reason: str) -> None:
        self.closed = reason


class _Hub:
    def __init__(self) -> None:
        self.by_user = {1: {_Sub()}, 4: {_Sub()}}
        self.seen: list[tuple[int, bytes]] = []

    def on_payloads(self, items: list[tuple[int, bytes]]) -> None:
        self.seen.extend(items)


def test_revocations_update_the_ban_list_and_end_streams_before_the_hub_sees_them() -> None:
    bans, hub = BanList(), _Hub()
    sink = RevocationSink(hub, bans)  # type: ignore[arg-type]
    later = int(time.time() * 1000) + 60_000

    def entry(user_id: int, until: int) -> tuple[int, bytes]:
        return 0, convert.event(AccessRevoked(user_id, "banned: x", until)).SerializeToString()

    other = (5, b"\x0a\x00")
    sink([entry(1, 0), entry(2, later), other, entry(3, 1)])
    assert bans.is_banned(1) and bans.is_banned(2)
    assert not bans.is_banned(3)  # lapsed long ago
    assert [s.closed for s in hub.by_user[1]] == ["banned: x"]
    assert [s.closed for s in hub.by_user[4]] == [None]
    assert len(hub.seen) == 4 and other in hub.seen
    sink([entry(1, -1)])
    assert not bans.is_banned(1)
