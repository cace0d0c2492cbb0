"""An event as a Redis stream entry: `e` the serialized ChatEvent, `g` its group, `t` the
W3C traceparent of the publishing call (when tracing). Written by the Redis broker, read by
every pod's tail and by the webhook notifier's consumer group."""

from __future__ import annotations

from typing import Any

PAYLOAD = b"e"
GROUP = b"g"
TRACE = b"t"


def decode_text(value: Any) -> str:
    """A Redis reply field as text (hiredis gives bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def fields(group_id: int, payload: bytes, traceparent: str = "") -> dict[Any, Any]:
    """The fields of the entry that carries `payload` for `group_id`."""
    out: dict[Any, Any] = {GROUP: group_id, PAYLOAD: payload}
    if traceparent:
        out[TRACE] = traceparent
    return out


def payload_of(entry_fields: Any) -> bytes | None:
    """The serialized ChatEvent of an entry (None for an entry that carries none)."""
    payload: bytes | None = entry_fields.get(PAYLOAD)
    return payload


def group_of(entry_fields: Any) -> int:
    return int(entry_fields.get(GROUP, 0))
