"""Who is typing in a group, on this pod: each typer until their state expires.

Clients refresh "typing" every few seconds; a typer who stops refreshing (closed tab, lost
connection) drops out by itself after the TTL. Subscribers get the whole current set with
each change, so a client that missed one event is right again at the next.
"""

from __future__ import annotations

from chat_service.fanout.delivery import Delivery
from chat_service.gen import chat_pb2 as pb


class Typers:
    __slots__ = ("_group_id", "_until")

    def __init__(self, group_id: int) -> None:
        self._group_id = group_id
        self._until: dict[int, float] = {}  # user -> when their typing state expires

    def __bool__(self) -> bool:
        return bool(self._until)

    def update(self, user_id: int, is_typing: bool, now: float, ttl: float) -> Delivery | None:
        """Record a typing event; the event for subscribers, or None for a mere refresh."""
        was = self._until.get(user_id, 0.0) > now
        if is_typing:
            self._until[user_id] = now + ttl
        else:
            self._until.pop(user_id, None)
        if was and is_typing:
            return None  # a refresh: nothing changed for the subscribers
        return self._event(user_id, is_typing, now)

    def expire(self, now: float) -> list[Delivery]:
        """Drop typers whose state expired; one "stopped typing" event for each."""
        expired = [u for u, until in self._until.items() if until <= now]
        for uid in expired:
            del self._until[uid]
        return [self._event(uid, False, now) for uid in expired]

    def _event(self, user_id: int, is_typing: bool, now: float) -> Delivery:
        current = sorted(u for u, until in self._until.items() if until > now)
        return Delivery.from_event(
            pb.ChatEvent(
                typing=pb.TypingEvent(
                    group_id=self._group_id,
                    user_id=user_id,
                    is_typing=is_typing,
                    typing_user_ids=current,
                )
            )
        )
