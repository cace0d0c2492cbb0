"""Attachment settings from environment variables (see README "Configuration")."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from chat_service.config import ConfigError

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

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
class UploadQuotas:
    """What one user, or one group, may hold and start; 0 turns a quota off.

    "Pending" uploads are started (their declared size is reserved at StartUpload, before a
    byte is stored) or complete, and not yet sent in a message. The window quotas count what
    a user started in the last `window_seconds`, whatever became of it since."""

    pending_max_per_user: int = 10
    pending_bytes_per_user: int = 100 * MIB
    user_bytes_per_window: int = 200 * MIB
    user_uploads_per_window: int = 100
    window_seconds: int = 3_600
    group_storage_bytes: int = 2 * GIB


@dataclass(frozen=True)
class AttachmentSettings:
    max_bytes: int = 25 * MIB
    allowed_types: tuple[str, ...] = DEFAULT_ALLOWED_TYPES
    store: str = "postgres"  # where new uploads go: "postgres" or "s3"
    # Unsent uploads (never claimed by a message) are deleted this long after StartUpload.
    orphan_ttl_seconds: int = 7_200
    cleanup_interval_seconds: float = 300.0
    quotas: UploadQuotas = field(default_factory=UploadQuotas)
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


_UNITS = {
    "": 1, "b": 1, "byte": 1, "bytes": 1,
    "k": KIB, "kb": KIB, "kib": KIB,
    "m": MIB, "mb": MIB, "mib": MIB,
    "g": GIB, "gb": GIB, "gib": GIB,
}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]*)$")


def _bytes(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    """A byte count: `26214400`, `25 MiB`, `2GiB` (binary units; KB, MB, GB mean the same)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    match = _SIZE.match(raw.lower())
    if match is None or match.group(2) not in _UNITS:
        raise ConfigError(
            f"{name} must be a number of bytes (e.g. 26214400 or 25 MiB), got {raw!r}"
        )
    value = int(float(match.group(1)) * _UNITS[match.group(2)])
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum} bytes, got {value}")
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
    max_bytes = _bytes(e, "ATTACHMENT_MAX_BYTES", 25 * MIB, 1)
    d = UploadQuotas()
    quotas = UploadQuotas(
        pending_max_per_user=_int(e, "ATTACHMENT_PENDING_MAX_PER_USER", d.pending_max_per_user, 0),
        pending_bytes_per_user=_bytes(
            e, "ATTACHMENT_PENDING_BYTES_PER_USER", d.pending_bytes_per_user, 0
        ),
        user_bytes_per_window=_bytes(
            e, "ATTACHMENT_USER_BYTES_PER_WINDOW", d.user_bytes_per_window, 0
        ),
        user_uploads_per_window=_int(
            e, "ATTACHMENT_USER_UPLOADS_PER_WINDOW", d.user_uploads_per_window, 0
        ),
        window_seconds=_int(e, "ATTACHMENT_USER_WINDOW_SECONDS", d.window_seconds, 1),
        group_storage_bytes=_bytes(
            e, "ATTACHMENT_GROUP_STORAGE_BYTES", d.group_storage_bytes, 0
        ),
    )
    # A byte quota below the size of one file would refuse files that the size limit allows.
    for name, value in (
        ("ATTACHMENT_PENDING_BYTES_PER_USER", quotas.pending_bytes_per_user),
        ("ATTACHMENT_USER_BYTES_PER_WINDOW", quotas.user_bytes_per_window),
        ("ATTACHMENT_GROUP_STORAGE_BYTES", quotas.group_storage_bytes),
    ):
        if 0 < value < max_bytes:
            raise ConfigError(
                f"{name} ({value} bytes) is below ATTACHMENT_MAX_BYTES ({max_bytes} bytes): "
                "raise it, lower ATTACHMENT_MAX_BYTES, or set 0 to turn the quota off"
            )
    return AttachmentSettings(
        max_bytes=max_bytes,
        allowed_types=allowed,
        store=store,
        orphan_ttl_seconds=_int(e, "ATTACHMENT_ORPHAN_TTL_SECONDS", 7_200, 1),
        cleanup_interval_seconds=_float(e, "ATTACHMENT_CLEANUP_INTERVAL_SECONDS", 300.0, 0.1),
        quotas=quotas,
        s3=s3,
    )
