"""Where events live in Redis: the names of the event streams and which reader lane reads each.

- Group shards: the events of group `g` go to shard `g % shards` (per-group order is kept,
  a hot group does not cap the others). A pod reads a shard only while one of its groups
  hashes to it (fanout/interest.py).
- The broadcast stream: events every pod reads, few and small: events addressed to no group
  (group 0) and a copy of each "joined" member event, so the pod holding the new member's
  stream learns of a group it did not follow yet.
- Wake streams: one per pod and lane, written by the pod itself to end its own blocking XREAD
  early when it starts following a shard.

Standalone Redis and Sentinel: one lane, the historical names `chat:events:<shard>`.
Redis Cluster: `lanes` lanes; every key of lane `l` carries the hash tag `{<prefix>:<l>}`, so
one XREAD of a lane names keys of one slot (no cross-slot command), while the lanes spread the
shards over the masters.
"""

from __future__ import annotations

from dataclasses import dataclass

# The largest sequence part of a stream ID: "<ms>-MAX_SEQ" sorts after every entry of that ms.
MAX_SEQ = 2**64 - 1


@dataclass(frozen=True)
class StreamKeys:
    prefix: str = "chat:events"
    shards: int = 8
    lanes: int = 1  # > 1 only with Redis Cluster

    def __post_init__(self) -> None:
        if self.shards < 1 or self.lanes < 1:
            raise ValueError("shards and lanes must be at least 1")

    def shard_of(self, group_id: int) -> int:
        return group_id % self.shards

    def lane_of_shard(self, shard: int) -> int:
        return shard % self.lanes

    def _base(self, lane: int) -> str:
        return self.prefix if self.lanes == 1 else f"{{{self.prefix}:{lane}}}"

    def shard_key(self, shard: int) -> str:
        return f"{self._base(self.lane_of_shard(shard))}:{shard}"

    def group_key(self, group_id: int) -> str:
        return self.shard_key(self.shard_of(group_id))

    @property
    def broadcast_key(self) -> str:
        return f"{self._base(0)}:all"

    def wake_key(self, lane: int, token: str) -> str:
        return f"{self._base(lane)}:wake:{token}"

    @property
    def all_shard_keys(self) -> list[str]:
        return [self.shard_key(i) for i in range(self.shards)]

    def lane_shard_keys(self, lane: int) -> list[str]:
        return [self.shard_key(i) for i in range(self.shards) if self.lane_of_shard(i) == lane]


def id_after_ms(ms: int) -> str:
    """The position just before every entry added at `ms` or later."""
    return f"{ms - 1}-{MAX_SEQ}" if ms > 0 else "0-0"


def parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def earlier(a: str, b: str) -> str:
    return a if parse_id(a) <= parse_id(b) else b
