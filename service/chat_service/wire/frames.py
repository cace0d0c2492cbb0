"""Stream entries framed once: an event as one element of `SubscribeResponse.events`
(field 1, length-delimited), so a batch for a stream is the concatenation of its entries and
no recipient costs protobuf work."""

from __future__ import annotations

from chat_service.gen import chat_pb2 as pb


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        bits = n & 0x7F
        n >>= 7
        if n:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def frame_entry(payload: bytes) -> bytes:
    """Encode one ChatEvent payload as a `repeated ChatEvent events = 1` element."""
    return b"\x0a" + _varint(len(payload)) + payload


# Events that name their group in a `group_id` field of their own.
_GROUPED = frozenset({"typing", "member", "gap", "updated", "receipt", "mention",
                      "group_updated", "group_deleted", "moderation", "thread", "pin"})


def address(event: pb.ChatEvent, group_id: int = 0) -> tuple[str, int, int]:
    """(the event's oneof name, its group, its message seq or 0). `group_id` addresses
    events that carry no group (presence, heartbeats)."""
    kind = event.WhichOneof("event") or ""
    if kind == "message":
        return kind, event.message.group_id, event.message.seq
    if kind in _GROUPED:
        return kind, getattr(event, kind).group_id, 0
    return kind, group_id, 0
