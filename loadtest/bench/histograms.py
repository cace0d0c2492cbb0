"""Latency histogram: buckets of 10 us below 10 ms, 0.1 ms below 100 ms, 1 ms below 1 s, then
10 ms. Mergeable across processes; percentiles are exact to the bucket width.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def bucket(ms: float) -> float:
    if ms < 10.0:
        return round(ms, 2) if ms > 0.0 else 0.0
    if ms < 100.0:
        return round(ms, 1)
    if ms < 1000.0:
        return float(round(ms))
    return float(round(ms, -1))


class Hist:
    def __init__(self, counts: dict[float, int] | None = None) -> None:
        self.counts: dict[float, int] = counts if counts is not None else {}

    def add(self, ms: float) -> None:
        b = bucket(ms)
        self.counts[b] = self.counts.get(b, 0) + 1

    def merge(self, pairs: Iterable[Sequence[float]]) -> None:
        for value, count in pairs:
            self.counts[float(value)] = self.counts.get(float(value), 0) + int(count)

    def pairs(self) -> list[tuple[float, int]]:
        return sorted(self.counts.items())

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def percentile(self, q: float) -> float | None:
        total = self.total
        if total == 0:
            return None
        rank = max(1, int(q / 100.0 * total + 0.999999))
        seen = 0
        for value, count in sorted(self.counts.items()):
            seen += count
            if seen >= rank:
                return value
        return max(self.counts)

    def summary(self) -> dict[str, float | int | None]:
        return {
            "count": self.total,
            "p50": self.percentile(50),
            "p95": self.percentile(95),
            "p99": self.percentile(99),
            "max": max(self.counts) if self.counts else None,
        }
