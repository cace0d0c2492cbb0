"""An event ready for the wire: decoded once per pod, encoded once per pod.

`entry` is the event already framed as one element of `SubscribeResponse.events`
(wire/frames.py), so a batch for a stream is just the concatenation of entries: no
per-recipient protobuf work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from chat_service.domain.models import Message
from chat_service.gen import chat_pb2 as pb
from chat_service.wire import convert
from chat_service.wire.frames import address, frame_entry


@dataclass(slots=True)
class Delivery:
    kind: str  # the ChatEvent oneof name: message, typing, member, presence, gap, heartbeat
    group_id: int
    seq: int  # message seq; 0 for unsequenced events
    event: pb.ChatEvent
    entry: bytes
    _message_bytes: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_payload(cls, payload: bytes, group_id: int = 0) -> Delivery:
        """Decode a broker entry; `group_id` addresses events that carry no group (presence)."""
        event = pb.ChatEvent.FromString(payload)
        return cls.from_event(event, payload, group_id)

    @classmethod
    def from_event(
        cls, event: pb.ChatEvent, payload: bytes | None = None, group_id: int = 0
    ) -> Delivery:
        if payload is None:
            payload = event.SerializeToString()
        kind, group_id, seq = address(event, group_id)
        return cls(kind, group_id, seq, event, frame_entry(payload))

    @classmethod
    def from_message(cls, message: Message) -> Delivery:
        return cls.from_event(pb.ChatEvent(message=convert.message(message)))

    @classmethod
    def updated(cls, message: Message) -> Delivery:
        """A changed message as its own reader sees it (with `mine` reaction flags)."""
        return cls.from_event(pb.ChatEvent(updated=convert.message(message)))

    @classmethod
    def gap(cls, group_id: int, from_seq: int, resume_seq: int) -> Delivery:
        return cls.from_event(
            pb.ChatEvent(gap=pb.GapEvent(group_id=group_id, from_seq=from_seq,
                                         resume_seq=resume_seq))
        )

    @classmethod
    def heartbeat(cls) -> Delivery:
        return cls.from_event(
            pb.ChatEvent(heartbeat=pb.Heartbeat(timestamp_ms=int(time.time() * 1000)))
        )

    def message_bytes(self) -> bytes:
        """The MessageResponse alone (for StreamMessages), serialised once."""
        if self._message_bytes is None:
            self._message_bytes = self.event.message.SerializeToString()
        return self._message_bytes
