"""The app's backend credential: tokens that may call chat.ChatBackend (issue 15).

A backend token is a JWT signed with a key of its own, never the users' key:
`BACKEND_JWT_SECRET` (HS256) and/or `BACKEND_JWT_PUBLIC_KEY[_FILE]` (RS256, the app keeps the
private key), with the claim `chat_role: "service"` and an `exp`. Both directions are closed:

- a user token cannot reach backend powers: it is signed with the users' key, which this
  verifier does not hold (and the secrets must differ: a ConfigError otherwise), and it lacks
  the claim;
- a backend token cannot pass as a user: the users' verifier does not hold the backend key, and
  refuses any token carrying `chat_role` (auth/jwt.py), should an app sign one with the wrong
  key by accident.

The subject (`sub`) names the calling system (e.g. "laravel") and is only logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from chat_service.auth.jwt import MAX_TOKEN_BYTES
from chat_service.auth.settings import BackendJwtSettings
from chat_service.domain.errors import Unauthenticated

SERVICE_ROLE_CLAIM = "chat_role"
SERVICE_ROLE = "service"


@dataclass(frozen=True, slots=True)
class BackendCaller:
    """The app's backend, as a verified token names it."""

    subject: str


class BackendVerifier:
    """Verifies backend tokens. With no backend key configured every call is refused."""

    def __init__(self, settings: BackendJwtSettings) -> None:
        self._settings = settings
        self._keys: dict[str, Any] = {}
        if settings.secret:
            self._keys["HS256"] = settings.secret.encode()
        if settings.public_key:
            self._keys["RS256"] = jwt.algorithms.get_default_algorithms()["RS256"].prepare_key(
                settings.public_key.encode()
            )

    def verify(self, token: str) -> BackendCaller:
        if not self._keys:
            raise Unauthenticated(
                "the backend API is disabled: set BACKEND_JWT_SECRET or BACKEND_JWT_PUBLIC_KEY"
            )
        if not token:
            raise Unauthenticated("missing backend token: send 'authorization: Bearer <jwt>'")
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthenticated(f"token is longer than {MAX_TOKEN_BYTES} bytes")
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"malformed token: {exc}") from exc
        key = self._keys.get(alg) if isinstance(alg, str) else None
        if key is None:
            raise Unauthenticated(
                f"token algorithm {alg!r} is not accepted for the backend API "
                f"(accepted: {', '.join(sorted(self._keys))})"
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[str(alg)],
                leeway=self._settings.leeway_seconds,
                options={"require": ["exp", SERVICE_ROLE_CLAIM], "verify_aud": False,
                         "verify_sub": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("backend token has expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthenticated("not a backend token (signature invalid for the backend key)"
                                  ) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"backend token lacks the claim {exc.claim!r}") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid backend token: {exc}") from exc
        if claims.get(SERVICE_ROLE_CLAIM) != SERVICE_ROLE:
            raise Unauthenticated(f"backend token needs {SERVICE_ROLE_CLAIM}: {SERVICE_ROLE!r}")
        issued = claims.get("iat")
        start = float(issued) if isinstance(issued, int | float) else None
        if start is None or float(claims["exp"]) - start > self._settings.max_ttl_seconds:
            raise Unauthenticated(
                "backend token needs an iat, and exp at most "
                f"{self._settings.max_ttl_seconds} s after it (BACKEND_JWT_MAX_TTL_SECONDS)"
            )
        sub = claims.get("sub")
        return BackendCaller(subject=str(sub) if isinstance(sub, str | int) else "backend")
