"""Settings from the environment and input limits (pure logic)."""

from __future__ import annotations

import pytest

from chat_service.config import ConfigError, Limits, load_settings
from chat_service.domain import validation
from chat_service.domain.errors import InvalidArgument
from chat_service.domain.models import MessageKind


def test_defaults_follow_the_original_compose_names() -> None:
    s = load_settings({"JWT_SECRET": "x"})
    assert (s.grpc_port, s.db_port, s.db_database, s.redis_port) == (50051, 5432, "chat", 6379)
    assert s.jwt.algorithms == ("HS256",)
    s = load_settings({"JWT_SECRET": "x", "GRPC_PORT": "6000", "DB_HOST": "db",
                       "REDIS_HOST": "cache", "JWT_ALGORITHMS": "HS256,HS512"})
    assert (s.grpc_port, s.db_host, s.redis_host) == (6000, "db", "cache")
    assert s.jwt.algorithms == ("HS256", "HS512")


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "JWT_SECRET is required"),
        ({"JWT_SECRET": "x", "GRPC_PORT": "abc"}, "GRPC_PORT must be an integer"),
        ({"JWT_SECRET": "x", "JWT_ALGORITHMS": "none"}, "unsupported"),
        ({"JWT_SECRET": "x", "JWT_ALGORITHMS": "RS256"}, "JWT_PUBLIC_KEY"),
        ({"JWT_SECRET": "x", "BROKER": "kafka"}, "BROKER"),
        ({"JWT_SECRET": "x", "MIGRATE_ON_START": "maybe"}, "true or false"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_message_rules() -> None:
    limits = Limits(message_max_chars=10)
    assert validation.message_content("line\nnext", MessageKind.TEXT, limits) == "line\nnext"
    for bad in ("", "   ", "x" * 11, "nul\x00"):
        with pytest.raises(InvalidArgument):
            validation.message_content(bad, MessageKind.TEXT, limits)
    with pytest.raises(InvalidArgument, match="SYSTEM"):
        validation.message_content("hi", MessageKind.SYSTEM, limits)
    assert validation.page_size(0, Limits()) == 50
    assert validation.page_size(10_000, Limits()) == 200
    with pytest.raises(InvalidArgument):
        validation.page_size(-1, Limits())
