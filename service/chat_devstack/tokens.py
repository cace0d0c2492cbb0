"""Mint JWTs shaped like the ones a Laravel app issues (for development and tests)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"
# The app's backend signs ChatBackend tokens with a key of its own (auth/backend.py).
DEV_BACKEND_JWT_SECRET = "dev-only-backend-secret-change-me-fedcba9876543210"


def mint(
    secret: str,
    user_id: int,
    *,
    name: str = "",
    ttl: int = 3600,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    """A tymon/jwt-auth style token: `sub` is the user id, `prv` hashes the model class."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": "http://localhost/api/auth/login",
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex[:16],
        "sub": str(user_id),
        "prv": "23bd5c8949f600adb39e701c400872db7a5976f7",
    }
    if name:
        payload["name"] = name
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm=algorithm)


def mint_backend(secret: str, *, ttl: int = 300, algorithm: str = "HS256",
                 subject: str = "laravel", **claims: Any) -> str:
    """A backend token for chat.ChatBackend: `chat_role: service`, short-lived."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + ttl,
                               "chat_role": "service", **claims}
    return jwt.encode(payload, secret, algorithm=algorithm)
