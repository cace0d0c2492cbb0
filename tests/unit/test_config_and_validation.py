"""Settings from the environment and input limits (pure logic)."""

from __future__ import annotations

import dataclasses

import pytest

from chat_service.__main__ import main
from chat_service.auth.jwt import _subject
from chat_service.config import ConfigError, Limits, Settings, load_settings
from chat_service.domain import validation
from chat_service.domain.errors import InvalidArgument, Unauthenticated
from chat_service.domain.models import MessageKind


def test_defaults_follow_the_original_compose_names() -> None:
    s = load_settings({"JWT_SECRET": "x"})
    assert (s.server.port, s.database.port, s.database.database, s.redis.port) == (
        50051, 5432, "chat", 6379
    )
    assert s.jwt.algorithms == ("HS256",)
    s = load_settings({"JWT_SECRET": "x", "GRPC_PORT": "6000", "DB_HOST": "db",
                       "REDIS_HOST": "cache", "JWT_ALGORITHMS": "HS256,HS512"})
    assert (s.server.port, s.database.host, s.redis.host) == (6000, "db", "cache")
    assert s.jwt.algorithms == ("HS256", "HS512")


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "JWT_SECRET is required"),
        ({"JWT_SECRET": "x", "GRPC_PORT": "abc"}, "GRPC_PORT must be an integer"),
        ({"JWT_SECRET": "x", "JWT_ALGORITHMS": "none"}, "unsupported"),
        ({"JWT_SECRET": "x", "JWT_ALGORITHMS": "RS256"}, "JWT_PUBLIC_KEY"),
        ({"JWT_SECRET": "x", "BROKER": "kafka"}, "BROKER must be one of redis, memory"),
        ({"JWT_SECRET": "x", "MIGRATE_ON_START": "maybe"}, "true or false"),
        ({"JWT_SECRET": "x", "ATTACHMENT_STORE": "ftp"}, "ATTACHMENT_STORE"),
        ({"JWT_SECRET": "x", "ATTACHMENT_MAX_BYTES": "lots"}, "ATTACHMENT_MAX_BYTES"),
        ({"JWT_SECRET": "x", "RATE_LIMIT_READS": "often"}, "RATE_LIMIT_READS"),
        ({"JWT_SECRET": "x", "PREAUTH_TIMEOUT_SECONDS": "soon"}, "PREAUTH_TIMEOUT_SECONDS"),
        ({"JWT_SECRET": "x", "GRPC_COMPRESSION": "brotli"}, "GRPC_COMPRESSION"),
        ({"JWT_SECRET": "x", "DB_POOL_MAX": "many"}, "DB_POOL_MAX must be an integer"),
        ({"JWT_SECRET": "x", "SUBSCRIBER_QUEUE_MAX": "1e3x"}, "SUBSCRIBER_QUEUE_MAX"),
        ({"JWT_SECRET": "x", "TYPING_TTL_SECONDS": "six"}, "TYPING_TTL_SECONDS must be a number"),
        ({"JWT_SECRET": "x", "MAX_INFLIGHT_CALLS": "lots"}, "MAX_INFLIGHT_CALLS"),
        ({"JWT_SECRET": "x", "NOTIFY_CLAIM_IDLE_MS": "-"}, "NOTIFY_CLAIM_IDLE_MS"),
        ({"JWT_SECRET": "x", "METRICS_PORT": "http"}, "METRICS_PORT"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_components_get_their_own_settings() -> None:
    s = load_settings({"JWT_SECRET": "x", "BROKER": " Memory ", "RATE_LIMIT_TYPING": "off",
                       "PREAUTH_MAX_CALLS": "7", "ATTACHMENT_STORE": "postgres",
                       "ATTACHMENT_MAX_BYTES": "1 MiB", "LIMIT_MESSAGE_CHARS": "10"})
    assert s.broker.kind == "memory"
    assert s.rates.user_typing == "" and s.rates.user_send == "20/5 seconds"
    assert s.gate.preauth_max == 7
    assert s.attachments.max_bytes == 1024 * 1024
    assert s.limits.message_max_chars == 10
    s = load_settings({
        "JWT_SECRET": "x", "GRPC_MAX_PENDING_CALLS": "9", "POD_NAME": "pod-3",
        "MAX_INFLIGHT_CALLS_PER_USER": "4", "DB_PASSWORD": "pw", "DB_POOL_MAX": "5",
        "BATCH_SENDS": "false", "REDIS_PASSWORD": "r", "STREAM_SHARDS": "2",
        "SUBSCRIBER_BATCH_MAX": "3", "LARGE_GROUP_FLUSH_MS": "0", "PRESENCE_TTL_SECONDS": "11",
        "MAX_STREAMS_PER_USER": "6", "NOTIFY_WEBHOOK_URL": "http://app/hook",
        "LOG_LEVEL": "debug", "METRICS_PORT": "0",
    })
    assert (s.server.max_pending_calls, s.server.pod_name) == (9, "pod-3")
    assert s.admission.max_inflight_calls_per_user == 4
    assert (s.database.password, s.database.pool_max, s.database.batch_sends) == ("pw", 5, False)
    assert s.database.dsn == "postgresql://chat@127.0.0.1:5432/chat"  # no password in it
    assert (s.redis.password, s.broker.stream_shards) == ("r", 2)
    assert (s.fanout.subscriber_batch_max, s.fanout.large_group_flush_ms) == (3, 0.0)
    assert (s.presence.ttl_seconds, s.presence.max_streams_per_user) == (11, 6)
    assert s.notifications.webhook_url == "http://app/hook"
    assert (s.telemetry.log_level, s.telemetry.metrics_port) == ("DEBUG", 0)


def test_the_root_settings_only_compose_the_components_settings() -> None:
    """Every variable is declared by a component's dataclass, none by `Settings` itself."""
    for f in dataclasses.fields(Settings):
        assert f.metadata.get("group"), f"Settings.{f.name} is not a component's settings group"


def test_a_bad_setting_exits_2_naming_it_before_any_connection(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attachment settings are read with the rest, at start: nothing is connected (the
    database here is unreachable, and reaching for it would retry for seconds)."""
    monkeypatch.setenv("JWT_SECRET", "x")
    monkeypatch.setenv("DB_PORT", "1")
    monkeypatch.setenv("ATTACHMENT_STORE", "ftp")
    assert main([]) == 2
    assert "ATTACHMENT_STORE" in capsys.readouterr().err


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


def test_member_emails_are_hidden_unless_enabled() -> None:
    assert load_settings({"JWT_SECRET": "x"}).privacy.expose_member_emails is False
    s = load_settings({"JWT_SECRET": "x", "EXPOSE_MEMBER_EMAILS": "true"})
    assert s.privacy.expose_member_emails
    with pytest.raises(ConfigError, match="EXPOSE_MEMBER_EMAILS"):
        load_settings({"JWT_SECRET": "x", "EXPOSE_MEMBER_EMAILS": "sometimes"})


@pytest.mark.parametrize("bad", ["a\x00b", "a\x1bb", "tab\there", "x\u202egnp.exe", "\u2066x",
                                 "\u200fx", "\ud800"])
def test_group_names_refuse_control_and_bidi_characters(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="group name contains"):
        validation.group_name(bad, Limits())


def test_group_descriptions_refuse_them_but_keep_newlines_and_tabs() -> None:
    assert validation.group_description(" one\n\ttwo ", Limits()) == "one\n\ttwo"
    for bad in ("a\x00b", "a\rb", "see \u2067here\u2069"):
        with pytest.raises(InvalidArgument, match="group description contains"):
            validation.group_description(bad, Limits())
    # Right-to-left text itself needs no control character.
    assert validation.group_name(" \u05e9\u05dc\u05d5\u05dd ", Limits()) == (
        "\u05e9\u05dc\u05d5\u05dd")


def test_messages_keep_bidi_marks_and_refuse_control_characters() -> None:
    text = "\u2067\u05e9\u05dc\u05d5\u05dd\u2069 \u200f!"
    assert validation.message_content(text, MessageKind.TEXT, Limits()) == text
    with pytest.raises(InvalidArgument, match="control"):
        validation.message_content("a\x00b", MessageKind.TEXT, Limits())


def test_client_msg_id_refuses_controls_and_bidi() -> None:
    for bad in ("a\x00", "a\u202e", " a"):
        with pytest.raises(InvalidArgument, match="client_msg_id"):
            validation.client_msg_id(bad, Limits())
    assert validation.client_msg_id("b7e2-1", Limits()) == "b7e2-1"


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("Alice", "Alice"),
        ("  Ali\x00ce\u202e ", "Alice"),
        ("Bob\nSmith\t\x07", "Bob Smith"),
        ("\ud800x\u2066", "x"),
        ("\x00\u200e", ""),
        ("\U0001f469\u200d\U0001f4bb Dev", "\U0001f469\u200d\U0001f4bb Dev"),  # ZWJ kept
        ("y" * 500, "y" * 100),
    ],
)
def test_display_names_from_tokens_are_cleaned(raw: str, cleaned: str) -> None:
    assert validation.display_text(raw) == cleaned


@pytest.mark.parametrize(
    "raw, kept",
    [
        ("alice@example.com", "alice@example.com"),
        (" bob.smith+chat@mail.example.co.uk ", "bob.smith+chat@mail.example.co.uk"),
        ("\u00e9l\u00e8ve@\u00e9cole.fr", "\u00e9l\u00e8ve@\u00e9cole.fr"),
        ("not an email", ""),
        ("a@b", ""),
        ("a@@b.com", ""),
        ("a@b.com\x00", ""),
        ("a\u202e@b.com", ""),
        ("<a@b.com>", ""),
        ("a@b..com", ""),
        ("x" * 250 + "@b.com", ""),
    ],
)
def test_email_claims_must_be_plausible(raw: str, kept: str) -> None:
    assert validation.plausible_email(raw) == kept


@pytest.mark.parametrize(
    "raw, kept",
    [
        ("https://cdn.example.com/a.png", "https://cdn.example.com/a.png"),
        ("http://127.0.0.1:8000/storage/a.jpg?v=2", "http://127.0.0.1:8000/storage/a.jpg?v=2"),
        ("javascript:alert(1)", ""),
        ("data:image/png;base64,AAAA", ""),
        ("//cdn.example.com/a.png", ""),
        ("https://", ""),
        ("http://[::1", ""),
        ("https://x.example/a b.png", ""),
        ("https://x.example/\u202egnp.exe", ""),
        ("ftp://x.example/a.png", ""),
    ],
)
def test_avatar_claims_must_be_http_urls(raw: str, kept: str) -> None:
    assert validation.http_url(raw) == kept


@pytest.mark.parametrize("sub", [7, "7", "9223372036854775807", 2**63 - 1])
def test_subject_accepts_canonical_decimals(sub: object) -> None:
    assert _subject({"sub": sub}) == int(sub)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    "sub",
    ["\u00b2", "\u0667", " 7 ", "0007", "7\n", "+7", "-7", "7.0", "0x7", "", "0",
     "9223372036854775808", 7.0, True, None, [7], {"id": 7}, 0, -7, 2**63],
)
def test_subject_refuses_everything_else(sub: object) -> None:
    with pytest.raises(Unauthenticated, match="sub"):
        _subject({"sub": sub})
