"""Attachment settings from environment variables (see README "Configuration")."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from chat_service.config import ConfigError

MIB = 1024 * 1024

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


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str = ""  # empty: AWS itself
    bucket: str = ""
    access_key_id: str = ""  # empty: botocore's default credential chain
    secret_access_key: str = ""
    region: str = "us-east-1"
    prefix: str = "attachments/"


@dataclass(frozen=True)
class AttachmentSettings:
    max_bytes: int = 25 * MIB
    allowed_types: tuple[str, ...] = DEFAULT_ALLOWED_TYPES
    store: str = "postgres"  # where new uploads go: "postgres" or "s3"
    orphan_ttl_seconds: int = 86_400
    cleanup_interval_seconds: float = 300.0
    max_chunk_bytes: int = MAX_CHUNK_BYTES
    download_chunk_bytes: int = DOWNLOAD_CHUNK_BYTES
    s3: S3Settings = field(default_factory=S3Settings)

    @property
    def s3_configured(self) -> bool:
        return bool(self.s3.bucket)


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def load_attachment_settings(env: Mapping[str, str] | None = None) -> AttachmentSettings:
    e = os.environ if env is None else env
    raw_types = e.get("ATTACHMENT_ALLOWED_TYPES", "").strip()
    allowed = (
        tuple(dict.fromkeys(t.strip().lower() for t in raw_types.split(",") if t.strip()))
        if raw_types
        else DEFAULT_ALLOWED_TYPES
    )
    for t in allowed:
        if t.count("/") != 1 or any(c in t for c in " ;"):
            raise ConfigError(f"ATTACHMENT_ALLOWED_TYPES has a malformed type {t!r}")
    store = e.get("ATTACHMENT_STORE", "postgres").strip().lower() or "postgres"
    if store not in {"postgres", "s3"}:
        raise ConfigError(f"ATTACHMENT_STORE must be 'postgres' or 's3', got {store!r}")
    s3 = S3Settings(
        endpoint_url=e.get("S3_ENDPOINT_URL", "").strip(),
        bucket=e.get("S3_BUCKET", "").strip(),
        access_key_id=e.get("S3_ACCESS_KEY_ID", "").strip(),
        secret_access_key=e.get("S3_SECRET_ACCESS_KEY", "").strip(),
        region=e.get("S3_REGION", "").strip() or "us-east-1",
        prefix=e.get("S3_PREFIX", "attachments/").strip(),
    )
    if store == "s3" and not s3.bucket:
        raise ConfigError("S3_BUCKET is required when ATTACHMENT_STORE=s3")
    if bool(s3.access_key_id) != bool(s3.secret_access_key):
        raise ConfigError("S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together")
    return AttachmentSettings(
        max_bytes=_int(e, "ATTACHMENT_MAX_BYTES", 25 * MIB, 1),
        allowed_types=allowed,
        store=store,
        orphan_ttl_seconds=_int(e, "ATTACHMENT_ORPHAN_TTL_SECONDS", 86_400, 1),
        cleanup_interval_seconds=_float(e, "ATTACHMENT_CLEANUP_INTERVAL_SECONDS", 300.0, 0.1),
        s3=s3,
    )
