"""Verify the JWTs a Laravel app issues and turn them into a caller identity.

Supported: tymon/jwt-auth (HS256 with a shared secret; `sub` is the user id, extra claims such
as `prv` are ignored) and Laravel Passport (RS256 with the PEM public key). The accepted
algorithms are pinned in configuration, so `alg: none` and algorithm-confusion tokens (an HS256
token signed with the RS256 public key as secret) are refused.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import jwt

from chat_service.auth.settings import JwtSettings
from chat_service.domain import validation
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
        if "chat_role" in claims:
            # A backend token (auth/backend.py) signed with the users' key by mistake: it must
            # not pass as a user either.
            raise Unauthenticated("a token with a chat_role claim is not a user token")
        # Display claims are cleaned, never refused: a user whose Laravel name is odd can
        # still chat, and nothing from a token can make storing the profile fail.
        user = UserProfile(
            id=_subject(claims),
            name=_first(claims, self._settings.name_claims, validation.display_text),
            email=_first(claims, self._settings.email_claims, validation.plausible_email),
            avatar=_first(claims, self._settings.avatar_claims, validation.http_url),
        )
        leeway = self._settings.leeway_seconds
        not_before = _epoch(claims.get("nbf", 0) or 0) - leeway
        expires = _epoch(claims["exp"]) + leeway
        return user, not_before, expires


# A canonical decimal user id: ASCII digits, no sign, spaces or leading zeros (so Arabic-Indic
# or superscript digits, " 7 " and "0007" are not user 7).
_CANONICAL_ID = re.compile(r"[1-9][0-9]{0,18}")
MAX_USER_ID = 2**63 - 1
SUBJECT_RULE = (
    "token subject (sub) must be the user id as a JSON integer or a string of ASCII digits "
    "without sign, spaces or leading zeros"
)


def _subject(claims: dict[str, Any]) -> int:
    sub = claims.get("sub")
    if isinstance(sub, int) and not isinstance(sub, bool):
        value = sub
    elif isinstance(sub, str) and _CANONICAL_ID.fullmatch(sub):
        value = int(sub)
    else:
        raise Unauthenticated(f"{SUBJECT_RULE}; got a {_json_type(sub)}")
    if not 0 < value <= MAX_USER_ID:
        raise Unauthenticated(f"token subject (sub) is out of range: 1 to {MAX_USER_ID}")
    return value


def _epoch(value: int | float) -> float:
    """A time claim as a float; PyJWT has checked it is an integer, but it may be too large
    for a float (an `exp` of 10**400 is valid JSON)."""
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def _json_type(value: object) -> str:
    if isinstance(value, str):
        return "string that is not a canonical decimal"
    names = {bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}
    return names.get(type(value), "null")


def _first(claims: dict[str, Any], names: tuple[str, ...], clean: Callable[[str], str]) -> str:
    """The first of `names` that is a string and is still non-empty once cleaned."""
    for name in names:
        value = claims.get(name)
        if isinstance(value, str):
            cleaned = clean(value[:4096])
            if cleaned:
                return cleaned
    return ""
