"""In-process broker: one pod, no Redis. For development and unit tests."""

from __future__ import annotations

from collections.abc import Sequence

from chat_service.fanout.broker import PayloadSink


class MemoryBroker:
    def __init__(self) -> None:
        self._sink: PayloadSink | None = None

    async def start(self, sink: PayloadSink) -> None:
        self._sink = sink

    async def publish(
        self, items: Sequence[tuple[int, bytes]], notices: Sequence[bytes] = ()
    ) -> None:
        """One process: the hub sees every group's own copy, so notices are not needed."""
        if self._sink is not None:
            self._sink(list(items))

    async def position(self) -> str:
        return ""

    def follow(self, group_id: int, since: str = "") -> None:
        """One process: every group is handed over anyway."""

    def unfollow(self, group_id: int) -> None:
        """One process: nothing to stop reading."""

    async def close(self) -> None:
        self._sink = None

    @property
    def healthy(self) -> bool:
        return True
