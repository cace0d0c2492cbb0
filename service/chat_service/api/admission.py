"""Admission control: shed unary calls early, with RESOURCE_EXHAUSTED and a retry hint,
instead of queueing them until every caller times out.

Three signals, all cheap:
- how long the call waited before its handler ran, from the `x-request-start` header Envoy
  adds (`t=<epoch ms>` when it received the request): above `max_queue` the caller has
  waited long enough, and working on a backlog of stale calls is what makes a server
  collapse (the queue sits in the proxy and in grpc-core, where nothing else can see it).
  Off unless configured: when the proxy itself is short of CPU every call arrives late and
  this signal refuses nearly all of them (measured with Envoy on the pods' cores);
- calls in flight on this pod above `max_inflight` (a burst larger than the pod can hold),
  or one user's calls in flight above `max_per_user` (one client cannot take the pod's
  whole budget);
- the event loop's lag (how late a timer fires) above `max_lag` on the last two samples:
  the pod is CPU-bound and every accepted call already waits that long before its first
  line runs. Sustained overload then costs a rejected call a few tens of microseconds, so
  the calls that are accepted keep the pod's full throughput at a bounded latency, instead
  of all calls slowing down together (and timing out after the work was done).

Only authenticated calls are counted (the call gate, api/gate.py, admits a call once its
token is verified). Streams are counted until their request is read: an open stream costs
memory, not CPU, and has its own per-user cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

from chat_service.domain.errors import ResourceExhausted
from chat_service.telemetry import metrics


class Admission:
    def __init__(
        self,
        max_inflight: int,
        max_lag: float,
        max_queue: float = 0.0,
        *,
        max_per_user: int = 0,
        sample_every: float = 0.025,
    ) -> None:
        self._max_inflight = max_inflight
        self._max_per_user = max_per_user
        self.by_user: dict[int, int] = {}
        self._max_lag = max_lag
        self._max_queue = max_queue
        self._every = sample_every
        self.inflight = 0
        self.lag = 0.0
        self._over = 0  # consecutive samples above max_lag
        self._task: asyncio.Task[None] | None = None

    @property
    def overloaded(self) -> bool:
        return self._max_lag > 0 and self._over >= 2

    def admit(self, queued: float | None = None, user_id: int = 0) -> None:
        """Count a call of `user_id` in, or refuse it with RESOURCE_EXHAUSTED (and a
        retry-after hint). Each admitted call is released once, with the same user id.

        `queued`: seconds the call waited before reaching the handler, when known."""
        if queued is not None and self._max_queue > 0 and queued > self._max_queue:
            metrics.CALLS_SHED.labels("queue").inc()
            raise ResourceExhausted(
                f"server overloaded (the call waited {queued * 1000:.0f} ms in line); "
                "retry shortly",
                retry_after=max(0.1, min(2.0, queued)),
            )
        if self._max_inflight > 0 and self.inflight >= self._max_inflight:
            metrics.CALLS_SHED.labels("inflight").inc()
            raise ResourceExhausted(
                f"server busy: {self.inflight} calls in progress on this pod; retry shortly",
                retry_after=0.2,
            )
        mine = self.by_user.get(user_id, 0)
        if self._max_per_user > 0 and mine >= self._max_per_user:
            metrics.CALLS_SHED.labels("user_inflight").inc()
            raise ResourceExhausted(
                f"{mine} of your calls are in progress on this server (the limit); "
                "wait for one to finish",
                retry_after=0.5,
            )
        if self.overloaded:
            metrics.CALLS_SHED.labels("lag").inc()
            raise ResourceExhausted(
                f"server overloaded (event loop {self.lag * 1000:.0f} ms behind); retry shortly",
                retry_after=max(0.1, min(2.0, 2 * self.lag)),
            )
        self.inflight += 1
        self.by_user[user_id] = mine + 1

    def release(self, user_id: int = 0) -> None:
        self.inflight -= 1
        left = self.by_user.get(user_id, 0) - 1
        if left > 0:
            self.by_user[user_id] = left
        else:
            self.by_user.pop(user_id, None)

    def observe_lag(self, lag: float) -> None:
        self.lag = lag
        metrics.LOOP_LAG.set(lag)
        self._over = self._over + 1 if self._max_lag > 0 and lag > self._max_lag else 0

    # ---- lag sampling ----

    def start(self) -> None:
        if self._task is None and self._max_lag > 0:
            self._task = asyncio.create_task(self._sample(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _sample(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self._every)
            self.observe_lag(max(0.0, time.perf_counter() - before - self._every))


def queued_for(
    metadata: Iterable[tuple[str, str | bytes]], now: float | None = None
) -> float | None:
    """Seconds since the proxy received the call (`x-request-start: t=<epoch ms>`), if known."""
    for key, value in metadata:
        if key == "x-request-start":
            text = value.decode() if isinstance(value, bytes) else value
            try:
                started = float(text.removeprefix("t=")) / 1000
            except ValueError:
                return None
            return max(0.0, (time.time() if now is None else now) - started)
    return None
