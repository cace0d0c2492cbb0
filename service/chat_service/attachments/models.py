"""Attachment values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Attachment:
    id: str
    group_id: int
    owner_id: int
    file_name: str
    claimed_type: str
    content_type: str  # detected from the bytes ('' until the first bytes arrived)
    size: int  # declared total size
    sha256: str  # declared hex digest
    received: int
    width: int
    height: int
    store: str
    completed: bool
    message_id: int | None
    head: bytes = b""  # first bytes (up to sniff.HEAD_BYTES) until the upload completes


@dataclass(frozen=True, slots=True)
class UploadUsage:
    """What a user and a group hold when a new upload asks to start (read under their locks)."""

    pending_count: int  # the user's uploads not sent in a message (started or complete)
    pending_bytes: int  # their declared sizes
    window_count: int  # uploads the user started in the rate window
    window_bytes: int  # their declared sizes
    window_oldest_age: float  # seconds since the oldest of them started (0 when none)
    group_bytes: int  # declared sizes of every attachment of the group (sent or not)
