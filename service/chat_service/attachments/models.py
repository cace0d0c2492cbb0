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
