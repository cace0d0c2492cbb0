"""Chat service processes started the way a pod starts them: `python -m chat_service`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def wait_serving(
    address: str, timeout: float = 30.0, service: str = "", root_cert: bytes | None = None
) -> None:
    """Poll the standard health service until SERVING (over TLS when `root_cert` is given)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    channel = (
        grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=root_cert))
        if root_cert
        else grpc.insecure_channel(address)
    )
    with channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # the stubs package omits methods
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as exc:
                last = exc
            time.sleep(0.1)
    raise TimeoutError(f"{address} did not become SERVING within {timeout}s: {last}")


class ServiceProcess:
    def __init__(
        self,
        name: str,
        env: dict[str, str],
        grpc_port: int,
        log_dir: Path,
        metrics_port: int = 0,
    ) -> None:
        self.name = name
        self.grpc_port = grpc_port
        self.metrics_port = metrics_port
        self.env = {
            **env,
            "GRPC_PORT": str(grpc_port),
            "POD_NAME": name,
            "METRICS_PORT": str(metrics_port),
        }
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, wait: bool = True) -> ServiceProcess:
        env = {**os.environ, **self.env}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chat_service"], env=env, stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait:
            cert_file = self.env.get("TLS_CERT_FILE")
            root = Path(cert_file).read_bytes() if cert_file else None
            try:
                wait_serving(self.address, root_cert=root)
            except TimeoutError:
                self.kill()
                raise RuntimeError(
                    f"{self.name} failed to start; log:\n{self.log_path.read_text()[-3000:]}"
                ) from None
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait: the graceful path a pod takes on deletion."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM a helper process, SIGKILL it if it has not ended within `timeout`."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_migrations(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "chat_service", "migrate"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
