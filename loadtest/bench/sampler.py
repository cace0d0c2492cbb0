"""Resource sampling (psutil) and server-side counters (/metrics of each pod)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

import psutil  # type: ignore[import-untyped]


class Sampler:
    """CPU% (user+system, 100 = one core) and peak memory of named process groups over a window.

    Memory is RSS, except for groups sampled with their children (PostgreSQL), where it is the
    PSS summed over the processes (RSS would count shared buffers once per backend).
    """

    def __init__(self, groups: dict[str, list[int]], include_children: set[str]) -> None:
        self.groups = groups
        self.include_children = include_children
        self._base: dict[int, float] = {}
        self._latest: dict[int, float] = {}
        self._rss: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._t0 = 0.0
        self._m0 = (0.0, 0.0)

    def _procs(self, name: str) -> list[Any]:
        out: list[Any] = []
        for pid in self.groups[name]:
            try:
                p = psutil.Process(pid)
                out.append(p)
                if name in self.include_children:
                    out.extend(p.children(recursive=True))
            except psutil.Error:
                continue
        return out

    def _sample(self) -> None:
        for name in self.groups:
            rss = 0.0
            for p in self._procs(name):
                try:
                    with p.oneshot():
                        t = p.cpu_times()
                        self._latest[p.pid] = t.user + t.system
                        if name in self.include_children:
                            # Shared buffers are mapped by every backend: PSS, not RSS, sums.
                            rss += p.memory_full_info().pss
                        else:
                            rss += p.memory_info().rss
                except psutil.Error:
                    continue
                self._base.setdefault(p.pid, self._latest[p.pid] if self._t0 == 0.0 else 0.0)
            self._rss[name] = max(self._rss.get(name, 0.0), rss)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self._sample()

    def _machine(self) -> tuple[float, float]:
        t = psutil.cpu_times()
        idle = t.idle + getattr(t, "iowait", 0.0)
        return sum(t) - idle - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0), idle

    def start(self) -> None:
        self._base, self._latest, self._rss = {}, {}, {}
        self._m0 = self._machine()
        self._t0 = 0.0
        self._sample()  # baseline: processes alive now count from here
        self._t0 = time.monotonic()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> dict[str, dict[str, float]]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample()
        wall = max(1e-6, time.monotonic() - self._t0)
        out: dict[str, dict[str, float]] = {}
        for name in self.groups:
            pids = {p.pid for p in self._procs(name)} | set(self.groups[name])
            cpu = sum(self._latest.get(pid, 0.0) - self._base.get(pid, 0.0) for pid in pids)
            out[name] = {
                "cpu_pct": round(100.0 * cpu / wall, 1),
                "rss_mb": round(self._rss.get(name, 0.0) / 2**20, 1),
            }
        # Everything else on the machine (kernel softirq for loopback, other people's jobs on
        # a shared machine) and what was left idle, in the same unit (% of one core).
        busy1, idle1 = self._machine()
        busy = 100.0 * (busy1 - self._m0[0]) / wall
        tracked = sum(v["cpu_pct"] for v in out.values())
        out["other"] = {"cpu_pct": round(max(0.0, busy - tracked), 1), "rss_mb": 0.0}
        out["idle"] = {"cpu_pct": round(100.0 * (idle1 - self._m0[1]) / wall, 1), "rss_mb": 0.0}
        return out


SERVER_COUNTERS = (
    "chat_gap_fills_total",
    "chat_subscribers_dropped_total",
    "chat_db_errors_total",
    "chat_redis_errors_total",
    "chat_messages_accepted_total",
    "chat_events_delivered_total",
    "chat_stream_writes_total",
    "chat_large_group_holds_total",
)


def scrape(ports: Sequence[int]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for port in ports:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            name_labels, _, value = line.rpartition(" ")
            name = name_labels.split("{", 1)[0]
            if name in SERVER_COUNTERS:
                key = name_labels.replace('"', "'")
                totals[key] = totals.get(key, 0.0) + float(value)
    return totals
