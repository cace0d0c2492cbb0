"""Upload quotas (settings.UploadQuotas), checked at StartUpload against the DECLARED size, so
the room is reserved before a byte is stored: pending (unsent) uploads per user, in number and
bytes; uploads and bytes a user started in the rate window; bytes stored and reserved per
group. A refusal is ResourceExhausted naming the quota and what to do, counted in
chat_rate_limited_total{rule}."""

from __future__ import annotations

from collections.abc import Callable

from chat_service.attachments.models import UploadUsage
from chat_service.attachments.settings import GIB, KIB, MIB, UploadQuotas
from chat_service.domain.errors import ResourceExhausted
from chat_service.telemetry import metrics


def size_text(n: int) -> str:
    """`100 MiB`, `143.1 MiB`, `2500 bytes`: whole units, or one decimal from 10 units on
    (precise enough there), else bytes."""
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if n and n % unit == 0:
            return f"{n // unit} {name}"
        if n >= 10 * unit:
            return f"{n / unit:.1f} {name}"
    return "1 byte" if n == 1 else f"{n} bytes"


def duration_text(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return "1 hour" if hours == 1 else f"{hours} hours"
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return "1 minute" if minutes == 1 else f"{minutes} minutes"
    return f"{seconds:g} seconds"


def quota_check(
    quotas: UploadQuotas, ttl_seconds: int, group_id: int, size: int
) -> Callable[[UploadUsage], None]:
    """Refuses (ResourceExhausted) an upload of `size` bytes that would break a quota."""
    expire = f"unsent uploads are deleted {duration_text(ttl_seconds)} after they were started"

    def refuse(rule: str, message: str, retry_after: float | None = None) -> None:
        metrics.RATE_LIMITED.labels(rule).inc()
        raise ResourceExhausted(message, retry_after=retry_after)

    def admit(u: UploadUsage) -> None:
        q = quotas
        if q.pending_max_per_user and u.pending_count >= q.pending_max_per_user:
            refuse(
                "upload_pending_count",
                f"{u.pending_count} unsent uploads pending (the limit per user is "
                f"{q.pending_max_per_user}); send them in a message or let them expire "
                f"({expire}) before starting another",
            )
        if q.pending_bytes_per_user and u.pending_bytes + size > q.pending_bytes_per_user:
            refuse(
                "upload_pending_bytes",
                f"unsent uploads pending hold {size_text(u.pending_bytes)} and this one "
                f"declares {size_text(size)}: over the limit of "
                f"{size_text(q.pending_bytes_per_user)} of unsent uploads per user; send them "
                f"in a message or let them expire ({expire})",
            )
        window = duration_text(q.window_seconds)
        retry = max(1.0, q.window_seconds - u.window_oldest_age)
        if q.user_uploads_per_window and u.window_count >= q.user_uploads_per_window:
            refuse(
                "upload_user_count",
                f"upload limit per user reached: {u.window_count} uploads started in the last "
                f"{window} (the limit is {q.user_uploads_per_window}); retry in {retry:.0f} s",
                retry,
            )
        if q.user_bytes_per_window and u.window_bytes + size > q.user_bytes_per_window:
            refuse(
                "upload_user_bytes",
                f"upload volume limit per user reached: {size_text(u.window_bytes)} started "
                f"in the last {window} and this upload declares {size_text(size)}; the limit "
                f"is {size_text(q.user_bytes_per_window)} per {window}; retry in {retry:.0f} s",
                retry,
            )
        if q.group_storage_bytes and u.group_bytes + size > q.group_storage_bytes:
            refuse(
                "upload_group_storage",
                f"group {group_id} holds {size_text(u.group_bytes)} of files and this upload "
                f"declares {size_text(size)}: over the group's storage limit of "
                f"{size_text(q.group_storage_bytes)}; delete messages with files (or wait "
                f"for unsent uploads to expire) to make room",
            )

    return admit
