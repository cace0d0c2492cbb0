"""Redis on its HA engines, as real processes on loopback for the tests: a Redis Cluster of
three masters (no replicas), and a master + replica watched by three sentinels.

Each helper starts `redis-server` processes (Debian's package) in a directory of its own and
stops them; the service is then pointed at them with REDIS_MODE and its variables (`env`).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from chat_devstack.ports import free_port, wait_for_port
from chat_devstack.processes import terminate


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found; install it with: apt-get install -y redis-server")
    return found


def cli(port: int, *args: str) -> str:
    out = subprocess.run([_binary("redis-cli"), "-p", str(port), *args], check=True,
                         capture_output=True, text=True, timeout=30)
    return out.stdout


@dataclass
class RedisProcess:
    """One redis-server (or sentinel) with its own config file."""

    base_dir: Path
    port: int
    config: list[str]
    sentinel: bool = False
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisProcess:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        conf = self.base_dir / ("sentinel.conf" if self.sentinel else "redis.conf")
        if not conf.exists():  # a sentinel rewrites its own file; keep it across restarts
            conf.write_text("\n".join([
                f"port {self.port}", "bind 127.0.0.1", "protected-mode no",
                f'dir "{self.base_dir}"', *([] if self.sentinel else ['save ""']),
                *self.config,
            ]) + "\n")
        args = [_binary("redis-server"), str(conf)] + (["--sentinel"] if self.sentinel else [])
        log = open(self.base_dir / "log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for_port(self.port)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (so at most 55535)."""
    for _ in range(200):
        port = free_port()
        if port <= 55535:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair for a Redis cluster node")


@dataclass
class RedisClusterHarness:
    """`masters` cluster nodes, every slot assigned (`redis-cli --cluster create`)."""

    base_dir: Path
    masters: int = 3
    nodes: list[RedisProcess] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {"REDIS_MODE": "cluster",
                "REDIS_CLUSTER_NODES": ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)}

    def start(self) -> RedisClusterHarness:
        try:
            for i in range(self.masters):
                port = cluster_port()
                self.nodes.append(RedisProcess(self.base_dir / f"node-{i}", port, [
                    "cluster-enabled yes", f"cluster-config-file nodes-{port}.conf",
                    "cluster-node-timeout 2000", "appendonly no",
                ]).start())
            subprocess.run(
                [_binary("redis-cli"), "--cluster", "create",
                 *(f"127.0.0.1:{n.port}" for n in self.nodes),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, capture_output=True, timeout=60,
            )
            deadline = time.monotonic() + 30
            while not all("cluster_state:ok" in cli(n.port, "cluster", "info")
                          for n in self.nodes):
                if time.monotonic() > deadline:
                    raise RuntimeError("the Redis cluster never reached cluster_state:ok")
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@dataclass
class SentinelHarness:
    """A master, one replica and three sentinels (quorum 2) watching `name`."""

    base_dir: Path
    name: str = "mymaster"
    down_after_ms: int = 1000
    master: RedisProcess | None = None
    replica: RedisProcess | None = None
    sentinels: list[RedisProcess] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {"REDIS_MODE": "sentinel", "REDIS_SENTINEL_MASTER": self.name,
                "REDIS_SENTINELS": ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)}

    def start(self) -> SentinelHarness:
        try:
            self.master = RedisProcess(self.base_dir / "master", free_port(), []).start()
            self.replica = RedisProcess(self.base_dir / "replica", free_port(), [
                f"replicaof 127.0.0.1 {self.master.port}",
            ]).start()
            for i in range(3):
                self.sentinels.append(RedisProcess(self.base_dir / f"sentinel-{i}", free_port(), [
                    f"sentinel monitor {self.name} 127.0.0.1 {self.master.port} 2",
                    f"sentinel down-after-milliseconds {self.name} {self.down_after_ms}",
                    f"sentinel failover-timeout {self.name} 10000",
                    f"sentinel parallel-syncs {self.name} 1",
                ], sentinel=True).start())
            self.wait_for(lambda: "master_link_status:up" in cli(self.replica_port,
                                                                 "info", "replication"),
                          "the replica to sync")
            self.wait_for(lambda: all(self._sentinel_knows_replica(s) for s in self.sentinels),
                          "every sentinel to see the replica")
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def replica_port(self) -> int:
        assert self.replica is not None
        return self.replica.port

    def _sentinel_knows_replica(self, sentinel: RedisProcess) -> bool:
        out = cli(sentinel.port, "sentinel", "replicas", self.name)
        return str(self.replica_port) in out

    def master_port(self) -> int:
        """Where the sentinels say the master is now."""
        out = cli(self.sentinels[0].port, "sentinel", "get-master-addr-by-name", self.name)
        return int(out.split()[1])

    @staticmethod
    def wait_for(check: object, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if callable(check) and check():
                    return
            except subprocess.CalledProcessError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def stop(self) -> None:
        for p in [*self.sentinels, self.replica, self.master]:
            if p is not None:
                p.stop()
