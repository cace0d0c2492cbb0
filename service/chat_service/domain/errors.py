"""Domain errors. The API layer maps each class to one gRPC status (api/errors.py)."""

from __future__ import annotations


class ChatError(Exception):
    """Base class: a request could not be served; the message is shown to the client."""


class InvalidArgument(ChatError):
    """The request is malformed or breaks a documented limit."""


class Unauthenticated(ChatError):
    """No valid credentials."""


class PermissionDenied(ChatError):
    """The caller is known but may not do this."""


class NotFound(ChatError):
    """The group, message or member does not exist (or is invisible to the caller)."""


class ResourceExhausted(ChatError):
    """A rate or size limit was hit; `retry_after` seconds is a hint when known."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(ChatError):
    """A dependency is down or the server is shutting down; retrying later is safe."""


class TooSlow(ChatError):
    """The client did not send what the call needs in time (its request, the next chunk).
    Not retried by the gateway: the same client would be as slow again."""
