"""Presence heartbeats refresh a pod's users in bounded pipelines."""

from __future__ import annotations

from typing import Any

from chat_service.presence import redis_presence
from chat_service.presence.redis_presence import RedisPresence


class FakePipeline:
    def __init__(self, log: list[list[tuple[Any, ...]]]) -> None:
        self._log = log
        self.commands: list[tuple[Any, ...]] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def zadd(self, key: str, mapping: dict[str, float], **options: Any) -> None:
        self.commands.append(("zadd", key, mapping))

    def expire(self, key: str, seconds: int) -> None:
        self.commands.append(("expire", key, seconds))

    async def execute(self) -> list[Any]:
        self._log.append(self.commands)
        return [1] * len(self.commands)


class FakeRedis:
    def __init__(self) -> None:
        self.executed: list[list[tuple[Any, ...]]] = []

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self.executed)


class NoEvents:
    async def publish(self, events: Any) -> None:
        return None


async def no_groups(user_id: int) -> list[int]:
    return []


def presence_on(client: FakeRedis) -> RedisPresence:
    return RedisPresence(
        client,  # type: ignore[arg-type]
        pod="pod-a",
        ttl_seconds=30,
        events=NoEvents(),
        groups_of=no_groups,
    )


async def test_heartbeat_refreshes_every_user_in_batches() -> None:
    client = FakeRedis()
    presence = presence_on(client)
    users = list(range(1, 2 * redis_presence.MARK_BATCH + 7))
    await presence._mark(users)
    assert len(client.executed) == 3
    assert all(len(cmds) <= 3 * redis_presence.MARK_BATCH for cmds in client.executed)
    marked = [cmd[1] for cmds in client.executed for cmd in cmds
              if cmd[0] == "zadd" and cmd[1] != "chat:presence:index"]
    assert marked == [f"chat:presence:{u}" for u in users]
    expiries = {cmd[2]["pod-a"] for cmds in client.executed for cmd in cmds
                if cmd[0] == "zadd" and cmd[1] != "chat:presence:index"}
    assert len(expiries) == 1  # one heartbeat, one expiry for all


async def test_heartbeat_without_users_sends_nothing() -> None:
    client = FakeRedis()
    presence = presence_on(client)
    await presence._mark([])
    assert client.executed == []
