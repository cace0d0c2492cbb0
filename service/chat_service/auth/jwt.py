"""Verify the JWTs a Laravel app issues and turn them into a caller identity.

Supported: tymon/jwt-auth (HS256 with a shared secret; `sub` is the user id, extra claims such
as `prv` are ignored) and Laravel Passport (RS256 with the PEM public key). The accepted
algorithms are pinned in configuration, so `alg: none` and algorithm-confusion tokens (an HS256
token signed with the RS256 public key as secret) are refused.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any

import jwt

from chat_service.config import JwtSettings
from chat_service.domain.errors import Unauthenticated
from chat_service.domain.models import UserProfile

MAX_TOKEN_BYTES = 8192


def token_key(token: str) -> bytes:
    """What the cache remembers a token by: its SHA-256, 32 bytes instead of the token itself
    (a few hundred bytes, one entry per connected user)."""
    return hashlib.sha256(token.encode()).digest()


class TokenVerifier:
    """Verifies signatures once per token: clients send the same token with every call, so a
    verified token is remembered (bounded, by the SHA-256 of the exact token) until it
    expires."""

    CACHE_SIZE = 50_000

    def __init__(self, settings: JwtSettings) -> None:
        self._settings = settings
        self._verified: OrderedDict[bytes, tuple[UserProfile, float, float]] = OrderedDict()
        self._keys: dict[str, Any] = {}
        for alg in settings.algorithms:
            if alg.startswith("HS"):
                self._keys[alg] = settings.secret.encode()
            else:
                self._keys[alg] = jwt.algorithms.get_default_algorithms()[alg].prepare_key(
                    settings.public_key.encode()
                )

    def verify(self, token: str) -> UserProfile:
        """Return who the token speaks for, or raise Unauthenticated with the reason."""
        key = token_key(token)
        cached = self._verified.get(key)
        if cached is not None:
            user, not_before, expires = cached
            now = time.time()
            if not_before <= now <= expires:
                return user
            del self._verified[key]  # expired now: verify again for the precise reason
        user, not_before, expires = self._verify(token)
        self._verified[key] = (user, not_before, expires)
        if len(self._verified) > self.CACHE_SIZE:
            self._verified.popitem(last=False)
        return user

    def _verify(self, token: str) -> tuple[UserProfile, float, float]:
        if not token:
            raise Unauthenticated(
                "missing token: send metadata 'authorization: Bearer <jwt>'"
            )
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthenticated(f"token is longer than {MAX_TOKEN_BYTES} bytes")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"malformed token: {exc}") from exc
        alg = header.get("alg")
        key = self._keys.get(alg) if isinstance(alg, str) else None
        if key is None:
            raise Unauthenticated(
                f"token algorithm {alg!r} is not accepted (accepted: "
                f"{', '.join(self._settings.algorithms)})"
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[str(alg)],
                audience=self._settings.audience or None,
                issuer=self._settings.issuer or None,
                leeway=self._settings.leeway_seconds,
                options={
                    "require": ["sub", "exp"],
                    "verify_aud": bool(self._settings.audience),
                    # tymon/jwt-auth puts a JSON number in `sub`; _subject() checks it.
                    "verify_sub": False,
                },
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthenticated("token is not valid yet (nbf/iat in the future)") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthenticated("token signature is invalid") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("token audience is not accepted") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated("token issuer is not accepted") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token lacks the required claim {exc.claim!r}") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        user = UserProfile(
            id=_subject(claims),
            name=_first_str(claims, self._settings.name_claims),
            email=_first_str(claims, self._settings.email_claims),
            avatar=_first_str(claims, self._settings.avatar_claims),
        )
        leeway = self._settings.leeway_seconds
        not_before = float(claims.get("nbf", 0) or 0) - leeway
        expires = float(claims["exp"]) + leeway
        return user, not_before, expires


def _subject(claims: dict[str, Any]) -> int:
    sub = claims.get("sub")
    if isinstance(sub, bool):
        raise Unauthenticated("token subject must be a numeric user id")
    if isinstance(sub, int):
        value = sub
    elif isinstance(sub, str) and sub.strip().isdigit():
        value = int(sub.strip())
    else:
        raise Unauthenticated("token subject must be a numeric user id")
    if value <= 0 or value >= 2**63:
        raise Unauthenticated("token subject is out of range")
    return value


def _first_str(claims: dict[str, Any], names: tuple[str, ...]) -> str:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value[:500]
    return ""
