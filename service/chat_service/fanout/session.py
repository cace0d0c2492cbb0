"""One subscriber's view of its groups: replay what it missed, then the live tail.

Race-free hand-over: the subscriber is registered with the hub *before* storage is read,
so every event committed after the read is queued; the session remembers the last sequence
number delivered per group and drops live messages already covered by the replay. Should a
live message skip ahead (an event lost in transit), the missing range is read from storage
before it, so the stream has no gap and no duplicate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from chat_service.domain.errors import Unavailable
from chat_service.domain.models import GroupHead, Message
from chat_service.fanout.delivery import Delivery
from chat_service.fanout.hub import Hub
from chat_service.fanout.subscriber import Subscriber
from chat_service.gen import chat_pb2 as pb
from chat_service.telemetry import metrics

_REPLAY_PAGE = 500


class SessionStore(Protocol):
    async def heads_for_user(self, user_id: int) -> dict[int, GroupHead]:
        """The user's groups and where each stands, in one read."""
        ...

    async def updates_after(
        self, group_id: int, after_update_seq: int, upto_seq: int, limit: int, viewer: int
    ) -> list[Message]: ...


RESUME_HINT = "resume with Subscribe(positions=your last seq per group)"


class SubscriberDropped(Unavailable):
    """The server ended a subscriber's stream; the client resumes by position and loses
    nothing. `dropped` labels `chat_subscribers_dropped_total` when a stream fails so."""

    dropped = ""


class SubscriberLagged(SubscriberDropped):
    """The subscriber's queue overflowed; it must resume from its last positions."""

    dropped = "lagged"

    def __init__(self) -> None:
        super().__init__(f"subscriber fell too far behind; {RESUME_HINT}")


class SessionClosed(SubscriberDropped):
    """The server ended the stream (shutdown); `reason` says why."""

    dropped = "closed"

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}; {RESUME_HINT}")
        self.reason = reason


class Session:
    def __init__(
        self,
        hub: Hub,
        store: SessionStore,
        user_id: int,
        *,
        queue_max: int,
        batch_max: int,
        replay_max: int,
    ) -> None:
        self._hub = hub
        self._store = store
        self.user_id = user_id
        self._batch_max = batch_max
        self._replay_max = replay_max
        self.sub = Subscriber(user_id, queue_max)
        self.last: dict[int, int] = {}
        self.group_ids: list[int] = []  # the user's groups when the stream started
        self._replay_plan: list[tuple[int, int, int]] = []
        self._update_plan: list[tuple[int, int, int]] = []

    async def start(
        self, positions: dict[int, int], update_positions: dict[int, int] | None = None
    ) -> None:
        """Register with the hub, then read where each group stands in storage.

        After this returns every new event is queued for the subscriber; `replay()` then
        yields what was missed since `positions`.
        """
        hub = self._hub
        hub.add(self.sub, ())
        # Known to the hub before the read, so a group joined meanwhile reaches the stream
        # through its member event; a group whose shard this pod starts reading is read from
        # where the broker stood before the read.
        since = await hub.position()
        stored = await self._store.heads_for_user(self.user_id)
        group_ids = self.group_ids = sorted(stored)
        heads: dict[int, int] = {}
        for gid in group_ids:
            hub.attach(self.sub, gid, since)
            # The hub may have delivered messages committed after the read before the
            # stream was attached: the replay covers them too.
            heads[gid] = max(stored[gid].seq, hub.delivered_upto(gid))
        hub.set_heads(heads)
        self._replay_plan = []
        # Changes since the client's position; a change committed after the read arrives
        # live, so a group with none since then needs no query.
        self._update_plan = [
            (gid, after, positions.get(gid, 0))
            for gid, after in (update_positions or {}).items()
            if gid in stored and positions.get(gid, 0) > 0 and stored[gid].update_seq > after
        ]
        for gid in group_ids:
            head = heads[gid]
            start = positions.get(gid)
            if start is None or start >= head:
                self.last.setdefault(gid, head if start is None else max(start, 0))
                continue
            self.last[gid] = max(start, 0)
            self._replay_plan.append((gid, max(start, 0), head))

    async def replay(self) -> AsyncIterator[list[Delivery]]:
        """Yield the missed messages in order (or a GapEvent when too far behind)."""
        for gid, start, head in self._replay_plan:
            if head - start > self._replay_max:
                self.last[gid] = max(self.last.get(gid, 0), head)
                yield [Delivery.gap(gid, start + 1, head + 1)]
                continue
            async for batch in self._read(gid, start, head):
                yield batch
        # Changes (edits, deletes, reactions) to messages the client already had.
        for gid, after, upto in self._update_plan:
            changed = await self._store.updates_after(
                gid, after, upto, self._replay_max, self.user_id
            )
            if changed:
                yield [Delivery.updated(m) for m in changed]

    async def _read(self, gid: int, after: int, upto: int) -> AsyncIterator[list[Delivery]]:
        while after < upto:
            batch = await self._hub.recent.read(gid, after, upto, _REPLAY_PAGE)
            if not batch:
                return
            after = batch[-1].seq
            self.last[gid] = after
            yield batch

    async def next_batch(self, heartbeat: float) -> list[Delivery]:
        """Wait for live events; return them in order, deduplicated and gap-filled.

        An empty list means the heartbeat interval passed with nothing to send.
        """
        sub = self.sub
        await sub.wait(heartbeat)
        if sub.closed_reason is not None:
            raise SessionClosed(sub.closed_reason)
        if sub.lagged:
            raise SubscriberLagged()
        out: list[Delivery] = []
        last = self.last
        for d in sub.drain(self._batch_max):
            kind = d.kind
            if kind == "message":
                gid = d.group_id
                seen = last.get(gid)
                if seen is None:
                    continue  # not (or no longer) one of this user's groups
                if d.seq <= seen:
                    continue
                if d.seq > seen + 1:
                    async for fill in self._read(gid, seen, d.seq - 1):
                        metrics.GAP_FILLS.labels("session").inc(len(fill))
                        out.extend(fill)
                last[gid] = d.seq
                out.append(d)
            elif kind == "member":
                ev = d.event.member
                seen = last.get(ev.group_id)
                if seen is not None and 0 < ev.seq <= seen:
                    # Its SYSTEM message is already behind this stream's position: a change
                    # from before the stream started, read late by this pod's broker reader.
                    continue
                if ev.user.id == self.user_id:
                    if ev.kind == pb.MemberEvent.JOINED:
                        if ev.group_id not in last:
                            last[ev.group_id] = ev.seq - 1
                    else:
                        out.append(d)
                        last.pop(ev.group_id, None)
                        continue
                if ev.group_id in last:
                    out.append(d)
            elif kind == "mention":
                target = d.event.mention.user_id
                if d.group_id in last and (
                    target == self.user_id
                    or (target == 0 and d.event.mention.from_user_id != self.user_id)
                ):
                    out.append(d)
            elif kind == "thread":
                ev_thread = d.event.thread
                if (
                    d.group_id in last
                    and self.user_id in ev_thread.participant_ids
                    and ev_thread.from_user_id != self.user_id
                ):
                    out.append(d)
            elif d.group_id == 0 or d.group_id in last:
                out.append(d)
        return out

    def close(self) -> None:
        self._hub.remove(self.sub)
