"""Redis clients for the configured engine (REDIS_MODE): one server, a Sentinel-watched master,
or a Redis Cluster. Every Redis user of the service gets its client from here (backends.py).

- standalone: `redis.asyncio.Redis` to REDIS_HOST:REDIS_PORT.
- sentinel: `Sentinel.master_for(REDIS_SENTINEL_MASTER)`: each new connection asks the
  sentinels where the master is, so after a failover the clients reconnect to the promoted
  replica (a command in flight during the switch fails; callers treat that as Redis being away
  for a moment).
- cluster: `redis.asyncio.cluster.RedisCluster`, which routes each key to its master; callers
  never send a command naming keys of different slots (the broker's lanes use hash tags).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff

from chat_service.envconfig import ConfigError
from chat_service.fanout.settings import RedisSettings

RedisClient = aioredis.Redis | RedisCluster


def parse_nodes(name: str, raw: str) -> list[tuple[str, int]]:
    """`host:port,host:port` (at least one)."""
    nodes: list[tuple[str, int]] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"{name} must be host:port[,host:port...], got {part!r}")
        nodes.append((host, int(port)))
    if not nodes:
        raise ConfigError(f"{name} must name at least one host:port")
    return nodes


class RedisConnector:
    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self._sentinel: Sentinel | None = None
        if settings.mode == "sentinel":
            self._sentinel = Sentinel(  # type: ignore[no-untyped-call]
                parse_nodes("REDIS_SENTINELS", settings.sentinels),
                socket_timeout=1.0,
                sentinel_kwargs={"password": settings.sentinel_password or None,
                                 "socket_timeout": 1.0, "socket_connect_timeout": 1.0},
            )
        elif settings.mode == "cluster":
            parse_nodes("REDIS_CLUSTER_NODES", settings.cluster_nodes)

    @property
    def cluster(self) -> bool:
        return self.settings.mode == "cluster"

    def client(self, *, socket_timeout: float, retries: int = 1) -> RedisClient:
        """A client; `retries` = 0 fails a command at once when its connection breaks."""
        s = self.settings
        retry = Retry(NoBackoff(), 0) if retries <= 0 else Retry(ExponentialBackoff(0.5), retries)
        common: dict[str, Any] = {
            "password": s.password or None,
            "socket_connect_timeout": 1.0,
            "socket_timeout": socket_timeout,
        }
        if s.mode == "cluster":
            return RedisCluster(
                startup_nodes=[ClusterNode(h, p)
                               for h, p in parse_nodes("REDIS_CLUSTER_NODES", s.cluster_nodes)],
                retry=retry,
                **common,
            )
        if self._sentinel is not None:
            client: aioredis.Redis = self._sentinel.master_for(
                s.sentinel_master, retry=retry, **common
            )
            return client
        return aioredis.Redis(host=s.host, port=s.port, retry=retry, **common)

    async def node_client(self, router: RedisClient, key: str, *,
                          socket_timeout: float) -> aioredis.Redis:
        """A plain client to the server holding `key` (cluster: the master of its slot, as
        `router` knows it now; otherwise the router's own server). For blocking reads: a
        RedisCluster client resets all its connections when one fails and asks the server
        for the keys of every XREAD, which a long-blocking reader per lane cannot afford."""
        s = self.settings
        if not isinstance(router, RedisCluster):
            return self.client(socket_timeout=socket_timeout, retries=0)  # type: ignore[return-value]
        await router.initialize()
        node = router.get_node_from_key(key)
        if node is None:
            raise ConnectionError(f"no Redis Cluster node serves {key}")
        return aioredis.Redis(host=node.host, port=int(node.port), password=s.password or None,
                              socket_connect_timeout=1.0, socket_timeout=socket_timeout,
                              retry=Retry(NoBackoff(), 0))
