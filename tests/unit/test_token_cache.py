"""The verified-token cache: one signature check per token, small entries, bounded."""

from __future__ import annotations

import time

import pytest

from chat_devstack.tokens import mint
from chat_service.auth.jwt import TokenVerifier, token_key
from chat_service.config import JwtSettings
from chat_service.domain.errors import Unauthenticated
from chat_service.domain.models import UserProfile

SECRET = "unit-test-secret-0123456789abcdef0123456789"


class CountingVerifier(TokenVerifier):
    def __init__(self, settings: JwtSettings) -> None:
        super().__init__(settings)
        self.checks = 0

    def _verify(self, token: str) -> tuple[UserProfile, float, float]:
        self.checks += 1
        return super()._verify(token)


@pytest.fixture
def verifier() -> CountingVerifier:
    return CountingVerifier(JwtSettings(secret=SECRET, leeway_seconds=0))


def test_a_token_is_verified_once_and_remembered_by_its_digest(
    verifier: CountingVerifier,
) -> None:
    token = mint(SECRET, 42)
    assert verifier.verify(token).id == 42
    assert verifier.verify(token).id == 42
    assert verifier.checks == 1
    # The cache holds a 32-byte digest, not the (much longer) token.
    assert list(verifier._verified) == [token_key(token)]
    assert len(token_key(token)) == 32 < len(token)


def test_tokens_differing_in_one_character_are_distinct_entries(
    verifier: CountingVerifier,
) -> None:
    token = mint(SECRET, 42)
    verifier.verify(token)
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(Unauthenticated):
        verifier.verify(forged)
    assert verifier.checks == 2
    assert len(verifier._verified) == 1


def test_an_expired_entry_is_verified_again(
    verifier: CountingVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = mint(SECRET, 42, ttl=3600)
    verifier.verify(token)
    later = time.time() + 7200
    monkeypatch.setattr(time, "time", lambda: later)
    verifier.verify(token)  # PyJWT's own clock still accepts it; the cache did not
    assert verifier.checks == 2


def test_the_cache_is_bounded(verifier: CountingVerifier) -> None:
    verifier.CACHE_SIZE = 3
    tokens = [mint(SECRET, uid) for uid in range(1, 6)]
    for token in tokens:
        verifier.verify(token)
    assert list(verifier._verified) == [token_key(t) for t in tokens[-3:]]
    verifier.verify(tokens[0])  # evicted: checked again
    assert verifier.checks == 6
