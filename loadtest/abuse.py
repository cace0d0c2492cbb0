"""Abuse benchmark: the floods of issue 12 against a local cluster with default settings.

    .venv/bin/python -m loadtest.abuse                 # every scenario, ~3 minutes
    .venv/bin/python -m loadtest.abuse --calls 20000   # smaller floods
    .venv/bin/python -m loadtest.abuse --only header-only --pod-env GRPC_MAX_PENDING_CALLS=256

One service process and Envoy on loopback (chat_devstack.cluster, the launcher of `make
cluster`), production defaults (rate limits on). Each scenario runs its attacker in a separate
process, while bystanders (5 authenticated users, each sending a message every 250 ms) measure
what an honest user sees. For each scenario it prints RSS of the pod and of Envoy before, at
the peak during, and 5 s and 30 s after the attack, the bystanders' send latency, how the
attack's calls ended, what the pod shed (chat_calls_shed_total by signal), and, for slow
headers, when Envoy closed the connections. Results go to loadtest/results/abuse-<time>.json;
HARDENING.md publishes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil  # type: ignore[import-untyped]

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc
from loadtest.attacks.h2flood import header_only_calls
from loadtest.attacks.slowloris import slow_header_connections

RESULTS = Path(__file__).parent / "results"
MIB = 1024 * 1024


@dataclass
class Scenario:
    name: str
    attack: str
    pod_rss_mib: dict[str, float] = field(default_factory=dict)  # before / peak / after
    envoy_rss_mib: dict[str, float] = field(default_factory=dict)
    bystander: dict[str, float] = field(default_factory=dict)  # sends, errors, p50/p99 ms
    outcome: dict[str, Any] = field(default_factory=dict)
    shed: dict[str, float] = field(default_factory=dict)


# ---- the attacks, each in its own process ----


def _header_only(host: str, port: int, calls: int, connections: int) -> dict[str, Any]:
    result = asyncio.run(header_only_calls(host, port, calls, connections=connections,
                                           deadline=120.0))
    return {"sent": result.sent, "statuses": dict(result.statuses), "reset": result.reset,
            "unanswered": result.unanswered, "seconds": round(result.seconds, 1),
            "connections_closed_by_server": result.refused_connections,
            "summary": result.summary()}


def _slow_headers(host: str, port: int, count: int) -> dict[str, Any]:
    result = asyncio.run(slow_header_connections(host, port, count, hold_seconds=40.0))
    return {"opened": result.opened, "closed": result.closed, "still_open": result.still_open,
            "max_close_seconds": result.max_close_seconds,
            "connect_failures": result.connect_failures}


def _silent_uploads(address: str, count: int, seconds: float) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.ChatServiceStub(channel)
            never = asyncio.Event()

            async def silence() -> Any:
                await never.wait()
                yield pb.UploadChunkRequest()

            calls = [stub.UploadFile(silence()) for _ in range(count)]
            done = await asyncio.wait_for(
                asyncio.gather(*calls, return_exceptions=True), timeout=seconds)
            codes: dict[str, int] = {}
            for d in done:
                name = d.code().name if isinstance(d, grpc.aio.AioRpcError) else "OK"
                codes[name] = codes.get(name, 0) + 1
            return {"streams": count, "statuses": codes}

    return asyncio.run(run())


# ---- measuring ----


class RssProbe:
    def __init__(self, pids: dict[str, int]) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak = {name: 0.0 for name in pids}

    def now(self) -> dict[str, float]:
        return {n: p.memory_info().rss / MIB for n, p in self._procs.items()}

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for name, value in self.now().items():
                self.peak[name] = max(self.peak[name], value)
            await asyncio.sleep(0.2)


class Bystanders:
    """Five members of one group, each sending every `every` seconds; latency of each send."""

    def __init__(self, address: str, secret: str, every: float = 0.25) -> None:
        self._address = address
        self._secret = secret
        self._every = every
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        async with grpc.aio.insecure_channel(self._address) as channel:
            stub = pb_grpc.ChatServiceStub(channel)
            ids = [int(time.time() * 1000) % 10**9 * 10 + i for i in range(5)]
            meta = [(("authorization", f"Bearer {mint(self._secret, uid)}"),) for uid in ids]
            group = await stub.CreateGroup(pb.CreateGroupRequest(
                name=f"bystanders {uuid.uuid4().hex[:6]}", member_ids=ids[1:]), metadata=meta[0])

            async def one(m: tuple[tuple[str, str], ...]) -> None:
                while not stop.is_set():
                    started = time.perf_counter()
                    try:
                        await stub.SendMessage(pb.SendMessageRequest(
                            group_id=group.id, content="still here",
                            client_msg_id=uuid.uuid4().hex), metadata=m, timeout=10)
                        self.latencies.append(time.perf_counter() - started)
                    except grpc.aio.AioRpcError as exc:
                        self.errors[exc.code().name] = self.errors.get(exc.code().name, 0) + 1
                    await asyncio.sleep(self._every)

            await asyncio.gather(*(one(m) for m in meta))

    def summary(self) -> dict[str, float]:
        lat = sorted(self.latencies)
        if not lat:
            return {"sends": 0, "errors": sum(self.errors.values())}
        return {
            "sends": len(lat),
            "errors": sum(self.errors.values()),
            "p50_ms": round(statistics.median(lat) * 1000, 1),
            "p99_ms": round(lat[int(0.99 * (len(lat) - 1))] * 1000, 1),
            "max_ms": round(lat[-1] * 1000, 1),
        }


def shed_counts(metrics_port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
    counts: dict[str, float] = {}
    for line in text.decode().splitlines():
        if line.startswith("chat_calls_shed_total{"):
            signal = line.split('signal="', 1)[1].split('"', 1)[0]
            counts[signal] = float(line.rsplit(" ", 1)[1])
    return counts


async def scenario(
    cluster: Cluster,
    name: str,
    attack: str,
    bystander_address: str,
    run_attack: Callable[[], Awaitable[dict[str, Any]]],
) -> Scenario:
    pod = cluster.services[0]
    assert pod.proc is not None and cluster.envoy is not None
    probe = RssProbe({"pod": pod.proc.pid, "envoy": cluster.envoy.pid})
    result = Scenario(name, attack)
    before = probe.now()
    shed_before = shed_counts(pod.metrics_port)
    stop = asyncio.Event()
    bystanders = Bystanders(bystander_address, cluster.jwt_secret)
    watching = asyncio.create_task(probe.watch(stop))
    sending = asyncio.create_task(bystanders.run(stop))
    await asyncio.sleep(2.0)  # bystanders' baseline
    result.outcome = await run_attack()
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(watching, sending)
    await asyncio.sleep(5.0)  # the attacker's connections are gone; let the pod settle
    after_5s = probe.now()
    await asyncio.sleep(25.0)
    after = probe.now()
    shed_after = shed_counts(pod.metrics_port)
    result.pod_rss_mib = {"before": round(before["pod"], 1), "peak": round(probe.peak["pod"], 1),
                          "after_5s": round(after_5s["pod"], 1), "after": round(after["pod"], 1)}
    result.envoy_rss_mib = {"before": round(before["envoy"], 1),
                            "peak": round(probe.peak["envoy"], 1),
                            "after_5s": round(after_5s["envoy"], 1),
                            "after": round(after["envoy"], 1)}
    result.bystander = bystanders.summary()
    result.shed = {k: v - shed_before.get(k, 0.0) for k, v in shed_after.items()
                   if v - shed_before.get(k, 0.0)}
    return result


def in_process(fn: Callable[..., dict[str, Any]], *args: Any) -> Callable[[], Awaitable[Any]]:
    async def run() -> dict[str, Any]:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            return await asyncio.to_thread(pool.apply, fn, args)

    return run


async def main_async(args: argparse.Namespace) -> list[Scenario]:
    extra = dict(kv.split("=", 1) for kv in args.pod_env)
    cluster = Cluster(pods=1, with_envoy=True, with_metrics=True, rate_limits=True,
                      extra_env=extra).start()
    try:
        pod = cluster.services[0]
        gateway_host, gateway_port = cluster.gateway.rsplit(":", 1)
        results = []
        plan: list[tuple[str, str, str, Callable[[], Awaitable[Any]]]] = [
            (f"{args.calls:,} header-only calls, no token, {args.connections} connections, "
             "straight to the pod", "header-only", pod.address,
             in_process(_header_only, "127.0.0.1", pod.grpc_port, args.calls, args.connections)),
            (f"{args.calls:,} header-only calls, no token, {args.connections} connections, "
             "through Envoy", "header-only", cluster.gateway,
             in_process(_header_only, gateway_host, int(gateway_port), args.calls,
                        args.connections)),
            (f"{args.uploads} UploadFile streams sending nothing (no token), to the pod",
             "silent-uploads", pod.address,
             in_process(_silent_uploads, pod.address, args.uploads, 30.0)),
            (f"{args.slow:,} HTTP/1.1 requests with unfinished headers, to Envoy",
             "slowloris", cluster.gateway,
             in_process(_slow_headers, gateway_host, int(gateway_port), args.slow)),
        ]
        for name, attack, address, run in plan:
            if args.only and attack not in args.only:
                continue
            print(f"--- {name}", flush=True)
            if args.pod_env:
                name += f" (pod: {', '.join(args.pod_env)})"
            result = await scenario(cluster, name, attack, address, run)
            print(json.dumps(asdict(result), indent=1), flush=True)
            results.append(result)
        return results
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--uploads", type=int, default=520)
    parser.add_argument("--slow", type=int, default=3000)
    parser.add_argument("--pod-env", nargs="*", default=[], metavar="NAME=VALUE",
                        help="settings of the pod other than the defaults, e.g. "
                        "GRPC_MAX_PENDING_CALLS=256")
    parser.add_argument("--only", nargs="*", choices=["header-only", "silent-uploads",
                                                      "slowloris"])
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"abuse-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n")
    print(f"\n{'scenario':<70} {'pod MiB b/peak/a':>20} {'envoy MiB b/peak/a':>20} "
          f"{'bystander p99':>14}")
    for r in results:
        pod = "/".join(f"{v:.0f}" for v in r.pod_rss_mib.values())
        envoy = "/".join(f"{v:.0f}" for v in r.envoy_rss_mib.values())
        print(f"{r.name[:70]:<70} {pod:>20} {envoy:>22} "
              f"{r.bystander.get('p99_ms', float('nan')):>11.0f} ms")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
