"""Attachment settings from environment variables (see README "Configuration")."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chat_service.envconfig import (
    GIB,
    GROUP,
    KIB,
    MIB,
    ConfigError,
    byte_size,
    choice,
    csv,
    integer,
    load,
    number,
    stripped,
    var,
)

__all__ = [
    "DEFAULT_ALLOWED_TYPES", "DOWNLOAD_CHUNK_BYTES", "GIB", "KIB", "MAX_CHUNK_BYTES", "MIB",
    "AttachmentSettings", "S3Settings", "UploadQuotas", "load_attachment_settings",
]

DEFAULT_ALLOWED_TYPES: tuple[str, ...] = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "application/zip",
)

# Protocol limits, not configurable: a chunk above this is refused; downloads are cut to this.
MAX_CHUNK_BYTES = 1 * MIB
DOWNLOAD_CHUNK_BYTES = 256 * 1024


def _types(name: str, raw: str, default: Any) -> tuple[str, ...]:
    allowed = tuple(dict.fromkeys(t.lower() for t in csv(raw))) or tuple(default)
    for t in allowed:
        if t.count("/") != 1 or any(c in t for c in " ;"):
            raise ConfigError(f"{name} has a malformed type {t!r}")
    return allowed


def _stripped_or_empty(name: str, raw: str, default: Any) -> str:
    return raw.strip()


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str = var("S3_ENDPOINT_URL", "", _stripped_or_empty)  # empty: AWS itself
    bucket: str = var("S3_BUCKET", "", _stripped_or_empty)
    # empty: botocore's default credential chain
    access_key_id: str = var("S3_ACCESS_KEY_ID", "", _stripped_or_empty)
    secret_access_key: str = var("S3_SECRET_ACCESS_KEY", "", _stripped_or_empty)
    region: str = var("S3_REGION", "us-east-1", stripped)
    prefix: str = var("S3_PREFIX", "attachments/", _stripped_or_empty)


@dataclass(frozen=True)
class UploadQuotas:
    """What one user, or one may hold and start; 0 turns a quota off.

    "Pending" uploads are started (their declared size is reserved at StartUpload, before a
    byte is stored) or complete, and not yet sent in a message. The window quotas count what
    a user started in the last `window_seconds`, whatever became of it since."""

    pending_max_per_user: int = var("ATTACHMENT_PENDING_MAX_PER_USER", 10, integer(0))
    pending_bytes_per_user: int = var(
        "ATTACHMENT_PENDING_BYTES_PER_USER", 100 * MIB, byte_size(0)
    )
    user_bytes_per_window: int = var("ATTACHMENT_USER_BYTES_PER_WINDOW", 200 * MIB, byte_size(0))
    user_uploads_per_window: int = var("ATTACHMENT_USER_UPLOADS_PER_WINDOW", 100, integer(0))
    window_seconds: int = var("ATTACHMENT_USER_WINDOW_SECONDS", 3_600, integer(1))
    group_storage_bytes: int = var("ATTACHMENT_GROUP_STORAGE_BYTES", 2 * GIB, byte_size(0))


@dataclass(frozen=True)
class AttachmentSettings:
    max_bytes: int = var("ATTACHMENT_MAX_BYTES", 25 * MIB, byte_size(1))
    allowed_types: tuple[str, ...] = var(
        "ATTACHMENT_ALLOWED_TYPES", DEFAULT_ALLOWED_TYPES, _types
    )
    # where new uploads go: "postgres" or "s3"
    store: str = var("ATTACHMENT_STORE", "postgres", choice("postgres", "s3"))
    # Unsent uploads (never claimed by a message) are deleted this long after StartUpload.
    orphan_ttl_seconds: int = var("ATTACHMENT_ORPHAN_TTL_SECONDS", 7_200, integer(1))
    cleanup_interval_seconds: float = var(
        "ATTACHMENT_CLEANUP_INTERVAL_SECONDS", 300.0, number(0.1)
    )
    quotas: UploadQuotas = field(default_factory=UploadQuotas, metadata=GROUP)
    max_chunk_bytes: int = MAX_CHUNK_BYTES
    download_chunk_bytes: int = DOWNLOAD_CHUNK_BYTES
    s3: S3Settings = field(default_factory=S3Settings, metadata=GROUP)

    @property
    def s3_configured(self) -> bool:
        return bool(self.s3.bucket)


def load_attachment_settings(env: Mapping[str, str] | None = None) -> AttachmentSettings:
    """Attachment settings from `env` (os.environ by default), with the checks that span
    several variables."""
    s = load(AttachmentSettings, os.environ if env is None else env)
    if s.store == "s3" and not s.s3.bucket:
        raise ConfigError("S3_BUCKET is required when ATTACHMENT_STORE=s3")
    if bool(s.s3.access_key_id) != bool(s.s3.secret_access_key):
        raise ConfigError("S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together")
    # A byte quota below the size of one file would refuse files that the size limit allows.
    for name, value in (
        ("ATTACHMENT_PENDING_BYTES_PER_USER", s.quotas.pending_bytes_per_user),
        ("ATTACHMENT_USER_BYTES_PER_WINDOW", s.quotas.user_bytes_per_window),
        ("ATTACHMENT_GROUP_STORAGE_BYTES", s.quotas.group_storage_bytes),
    ):
        if 0 < value < s.max_bytes:
            raise ConfigError(
                f"{name} ({value} bytes) is below ATTACHMENT_MAX_BYTES ({s.max_bytes} bytes): "
                "raise it, lower ATTACHMENT_MAX_BYTES, or set 0 to turn the quota off"
            )
    return s
