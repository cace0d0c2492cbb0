"""Backend-wide bans, checked on every call without a round trip (issue 15).

Each pod keeps the ban list in memory: read whole from PostgreSQL at start and every
BAN_REFRESH_SECONDS (it is small: banned and erased users only), and updated at once from the
`access_revoked` events every pod reads from the broker (fanout/revocation.py: a ban, its
lifting, an erasure). So a
banned user is refused on every pod within one broker hop, or one refresh when Redis is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

LoadBans = Callable[[], Awaitable[dict[int, int]]]


class BanList:
    def __init__(self, refresh_seconds: float = 10.0) -> None:
        self._until: dict[int, int] = {}  # user id -> ms since the epoch; 0: for good
        self._refresh_seconds = refresh_seconds
        self._load: LoadBans | None = None
        self._task: asyncio.Task[None] | None = None

    def is_banned(self, user_id: int) -> bool:
        until = self._until.get(user_id)
        if until is None:
            return False
        if until == 0 or until > time.time() * 1000:
            return True
        del self._until[user_id]  # expired
        return False

    def apply(self, user_id: int, until_ms: int) -> None:
        """A ban until `until_ms` (0: for good); -1: lifted."""
        if until_ms == -1:
            self._until.pop(user_id, None)
        else:
            self._until[user_id] = until_ms

    async def start(self, load: LoadBans) -> None:
        """Load the list now (start-up fails if it cannot), then refresh in the background."""
        self._load = load
        self._until = dict(await load())
        self._task = asyncio.create_task(self._refresh_loop(), name="ban-list")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _refresh_loop(self) -> None:
        assert self._load is not None
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                self._until = dict(await self._load())
            except Exception:
                log.warning("refreshing the ban list failed; keeping the last one", exc_info=True)
