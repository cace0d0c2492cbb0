"""Mint JWTs shaped like the ones a Laravel app issues (for development and tests)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"


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
