"""Scaling benchmark: 1, 2, 4, 8 pods at a constant load per pod; what each pod reads from
Redis and what it costs.

Each pod gets the same load: `--groups` groups of `--members` users whose streams are on that
pod (users sticky to pods, as Envoy's ring hash keeps them), and `--rate` messages/s sent to
them through that pod. A share of the groups (`--cross`) also has one member on the next pod,
as teams that span pods do. Per pod the run reports: Redis stream entries and payload bytes
read per second (`chat_broker_entries_read_total`, `chat_broker_bytes_read_total`), the events
of its own groups per second (what it has to read), the ratio of the two, CPU (ms) per
delivered message, and RSS. `--baseline-shards 1` adds a run with one shard, where every pod
reads everything (the design before interest-based fan-out).

    python -m loadtest.scale                         # 1, 2, 4, 8 pods, 20 s each
    python -m loadtest.scale --pods 1,2 --duration 5 # quick look

Everything runs on this machine (PostgreSQL, Redis, the pods, the clients): figures from a
shared 2-core box are noisy, and 8 pods share its cores with the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psutil  # type: ignore[import-untyped]

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc

RESULTS = Path(__file__).parent / "results"
_METRIC = re.compile(r"^(chat_broker_entries_read_total|chat_broker_bytes_read_total|"
                     r"chat_events_delivered_total)(\{[^}]*\})? (\S+)$", re.M)


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    out: dict[str, float] = {}
    for name, _, value in _METRIC.findall(text):
        out[name] = out.get(name, 0.0) + float(value)
    return out


@dataclass
class PodLoad:
    """One pod's users, groups and what its subscribers received."""

    address: str
    groups: list[int] = field(default_factory=list)
    senders: list[tuple[int, str]] = field(default_factory=list)  # (group, token)
    tokens: list[str] = field(default_factory=list)
    received: int = 0
    sent: int = 0


_ids = iter(range(50_000_000, 60_000_000))


async def setup(cluster: Cluster, groups: int, members: int, cross: float) -> list[PodLoad]:
    pods = [PodLoad(s.address) for s in cluster.services]
    for i, pod in enumerate(pods):
        async with grpc.aio.insecure_channel(pod.address) as ch:
            stub = pb_grpc.ChatServiceStub(ch)
            for g in range(groups):
                users = [next(_ids) for _ in range(members)]
                tokens = [mint(cluster.jwt_secret, u) for u in users]
                md = (("authorization", f"Bearer {tokens[0]}"),)
                extra: list[int] = []
                if len(pods) > 1 and g < round(groups * cross):
                    guest = next(_ids)  # one member whose stream is on the next pod
                    extra = [guest]
                    pods[(i + 1) % len(pods)].tokens.append(mint(cluster.jwt_secret, guest))
                group = await stub.CreateGroup(pb.CreateGroupRequest(
                    name=f"scale-{uuid.uuid4().hex[:6]}", member_ids=users[1:] + extra),
                    metadata=md)
                pod.groups.append(group.id)
                pod.tokens.extend(tokens)
                pod.senders.append((group.id, tokens[0]))
    return pods


async def subscribe(pod: PodLoad, token: str, stop: asyncio.Event) -> None:
    async with grpc.aio.insecure_channel(pod.address) as ch:
        stub = pb_grpc.ChatServiceStub(ch)
        call = stub.Subscribe(pb.SubscribeRequest(),
                              metadata=(("authorization", f"Bearer {token}"),))
        try:
            async for batch in call:
                pod.received += sum(1 for e in batch.events if e.WhichOneof("event") == "message")
                if stop.is_set():
                    break
        except grpc.aio.AioRpcError:
            pass
        finally:
            call.cancel()


async def send_loop(pod: PodLoad, rate: float, stop: asyncio.Event) -> None:
    async with grpc.aio.insecure_channel(pod.address) as ch:
        stub = pb_grpc.ChatServiceStub(ch)
        interval = 1.0 / rate
        k = 0
        next_at = time.monotonic()
        while not stop.is_set():
            gid, token = pod.senders[k % len(pod.senders)]
            k += 1
            try:
                await stub.SendMessage(
                    pb.SendMessageRequest(group_id=gid, content=f"s{k}",
                                          client_msg_id=uuid.uuid4().hex),
                    metadata=(("authorization", f"Bearer {token}"),), timeout=5)
                pod.sent += 1
            except grpc.aio.AioRpcError:
                pass
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def own_events_per_second(pods: list[PodLoad], index: int, duration: float) -> float:
    """Messages/s of the groups that have a subscriber on pod `index`: its own groups, and the
    previous pod's cross groups (whose guest member streams here)."""
    pod = pods[index]
    own = pod.sent / duration
    if len(pods) > 1:
        prev = pods[index - 1]
        cross = sum(1 for g in prev.groups[: len(prev.groups)] if g in _cross_groups)
        own += prev.sent / duration * cross / max(1, len(prev.groups))
    return own


_cross_groups: set[int] = set()


async def run_step(n: int, args: argparse.Namespace, shards: int) -> dict[str, object]:
    cluster = Cluster(pods=n, with_envoy=False, with_metrics=True,
                      extra_env={"STREAM_SHARDS": str(shards), "LOG_LEVEL": "WARNING"})
    cluster.start()
    try:
        pods = await setup(cluster, args.groups, args.members, args.cross)
        _cross_groups.clear()
        for pod in pods:
            _cross_groups.update(pod.groups[: round(args.groups * args.cross)] if n > 1 else [])
        stop = asyncio.Event()
        subs = [asyncio.create_task(subscribe(p, t, stop)) for p in pods for t in p.tokens]
        await asyncio.sleep(2.0)  # streams open, presence settles
        procs = [psutil.Process(s.proc.pid) for s in cluster.services if s.proc is not None]
        before = [scrape(s.metrics_port) for s in cluster.services]
        cpu0 = [sum(p.cpu_times()[:2]) for p in procs]
        for p in pods:
            p.sent = p.received = 0
        started = time.monotonic()
        senders = [asyncio.create_task(send_loop(p, args.rate, stop)) for p in pods]
        await asyncio.sleep(args.duration)
        duration = time.monotonic() - started
        after = [scrape(s.metrics_port) for s in cluster.services]
        cpu1 = [sum(p.cpu_times()[:2]) for p in procs]
        rss = [p.memory_info().rss / 2**20 for p in procs]
        stop.set()
        for t in senders:
            await t
        for t in subs:
            t.cancel()
        await asyncio.gather(*subs, return_exceptions=True)
        rows = []
        for i in range(n):
            delta = {k: after[i].get(k, 0.0) - before[i].get(k, 0.0) for k in after[i]}
            delivered = delta.get("chat_events_delivered_total", 0.0)
            entries = delta.get("chat_broker_entries_read_total", 0.0) / duration
            own = own_events_per_second(pods, i, duration)
            rows.append({
                "pod": i,
                "entries_read_per_s": round(entries, 1),
                "bytes_read_per_s": round(delta.get("chat_broker_bytes_read_total", 0.0)
                                          / duration),
                "own_events_per_s": round(own, 1),
                "read_over_own": round(entries / own, 2) if own else None,
                "cpu_pct": round(100 * (cpu1[i] - cpu0[i]) / duration, 1),
                "cpu_ms_per_delivered": round(1000 * (cpu1[i] - cpu0[i]) / delivered, 3)
                if delivered else None,
                "delivered_per_s": round(delivered / duration, 1),
                "rss_mib": round(rss[i], 1),
            })
        return {"pods": n, "shards": shards, "duration_s": round(duration, 1), "per_pod": rows,
                "sent_per_s": round(sum(p.sent for p in pods) / duration, 1)}
    finally:
        cluster.stop()


def summary(step: dict[str, object]) -> str:
    rows = step["per_pod"]
    assert isinstance(rows, list)

    def mean(key: str) -> float:
        values = [r[key] for r in rows if r[key] is not None]
        return sum(values) / len(values) if values else 0.0

    return (f"| {step['pods']} | {step['shards']} | {step['sent_per_s']} | "
            f"{mean('entries_read_per_s'):.1f} | {mean('own_events_per_s'):.1f} | "
            f"{mean('read_over_own'):.2f} | {mean('bytes_read_per_s'):.0f} | "
            f"{mean('cpu_pct'):.1f} | {mean('cpu_ms_per_delivered'):.3f} | "
            f"{mean('rss_mib'):.0f} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", default="1,2,4,8")
    parser.add_argument("--groups", type=int, default=10, help="groups per pod")
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20.0, help="messages/s sent per pod")
    parser.add_argument("--cross", type=float, default=0.2,
                        help="share of a pod's groups with one member on the next pod")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--shards", type=int, default=256)
    parser.add_argument("--baseline-shards", type=int, default=0,
                        help="also run the largest pod count with this many shards (1: every "
                             "pod reads everything)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    steps = []
    counts = [int(p) for p in args.pods.split(",")]
    plan = [(n, args.shards) for n in counts]
    if args.baseline_shards:
        plan.append((max(counts), args.baseline_shards))
    print("| pods | shards | sent msg/s (all) | entries read/s per pod | own groups' events/s "
          "| read / own | bytes read/s | CPU % of a core | CPU ms per delivered msg | "
          "RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, shards in plan:
        step = await run_step(n, args, shards)
        steps.append(step)
        print(summary(step), flush=True)
    out = args.output or RESULTS / f"scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                               "steps": steps}, indent=1))
    print(f"results: {out}")


if __name__ == "__main__":
    asyncio.run(main())
