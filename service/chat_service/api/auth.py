"""Find the caller's token: `authorization: Bearer <jwt>` metadata, else the request field."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chat_service.auth.bans import BanList
from chat_service.auth.jwt import TokenVerifier
from chat_service.domain.errors import PermissionDenied, Unauthenticated
from chat_service.domain.models import UserProfile

Metadata = Iterable[Any]  # grpc metadata: (key, value) pairs


def bearer_from_metadata(metadata: Metadata | None) -> str:
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization metadata must be 'Bearer <jwt>'")
            return token.strip()
    return ""


class Authenticator:
    def __init__(self, verifier: TokenVerifier, bans: BanList | None = None) -> None:
        self._verifier = verifier
        self._bans = bans

    def caller(self, metadata: Metadata | None, field_token: str = "") -> UserProfile:
        """The identity of the caller. A token in metadata wins; a request-field token (for
        clients generated from the original proto) is used when metadata has none. When both
        are present they must name the same user."""
        header = bearer_from_metadata(metadata)
        if header:
            user = self._verifier.verify(header)
            if field_token and field_token != header:
                other = self._verifier.verify(field_token)
                if other.id != user.id:
                    raise PermissionDenied(
                        "jwt_token and authorization metadata name different users"
                    )
        else:
            user = self._verifier.verify(field_token)
        if self._bans is not None and self._bans.is_banned(user.id):
            raise PermissionDenied(f"user {user.id} is banned from this chat service")
        return user
