"""Two targets of the load-test issue, measured against one pod (PostgreSQL + Redis local), or
against N pods behind Envoy with `--pods N` (the deployed topology):

- history: a page of 50 (`GetMessageHistory`) on a group of 1,000,000 messages, at random
  positions; client-side latency percentiles (includes gRPC on loopback).
- reconnect storm: N subscribers (groups of 100) resume from positions 100 messages behind, all
  at once, and stay connected; time until every one has its 100 missed messages, each exactly
  once.

    python -m loadtest.history_and_storm --messages 1000000 --subscribers 5000
    python -m loadtest.history_and_storm --messages 2000 --pages 50 --pods 3   # storm via Envoy
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc
from chat_service.storage.postgres.repository import PostgresChatRepository, create_pool
from loadtest.bench import RESULTS_DIR, ROOT, summarize_raw
from loadtest.bench.workers import NodeWorkerHandle, call_all

# One TCP connection per channel: grpc-core otherwise shares one connection between all
# channels to a target, and Envoy admits 100 streams per connection (the pods 1,024).
ONE_CONNECTION_EACH = [("grpc.use_local_subchannel_pool", 1)]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000, 3)


async def history(cluster: Cluster, messages: int, pages: int) -> dict[str, object]:
    uid = 70_000_001
    md = (("authorization", f"Bearer {mint(cluster.jwt_secret, uid)}"),)
    async with grpc.aio.insecure_channel(cluster.gateway) as channel:
        stub = pb_grpc.ChatServiceStub(channel)
        group = await stub.CreateGroup(pb.CreateGroupRequest(name="big"), metadata=md)
        assert cluster.postgres is not None
        conn = await asyncpg.connect(host="127.0.0.1", port=cluster.postgres.port,
                                     user="chat", password="chat", database="chat")
        started = time.monotonic()
        await conn.execute(
            """INSERT INTO messages (group_id, seq, user_id, kind, content)
               SELECT $1, s, $2, 0, 'message number ' || s FROM generate_series(2, $3) AS s""",
            group.id, uid, messages + 1)
        await conn.execute("UPDATE groups SET last_seq = $2 WHERE id = $1", group.id,
                           messages + 1)
        await conn.execute("ANALYZE messages")
        loaded = time.monotonic() - started
        ids = [r["id"] for r in await conn.fetch(
            "SELECT id FROM messages WHERE group_id = $1 AND seq % 997 = 0", group.id)]
        await conn.close()
        # the storage query alone (the repository the service uses, one connection)
        pool = await create_pool(
            f"postgresql://chat@127.0.0.1:{cluster.postgres.port}/chat", "chat", 1, 2)
        repo = PostgresChatRepository(pool, batch_sends=False)
        db_latencies: list[float] = []
        for i in range(pages):
            before = 0 if i % 10 == 0 else random.choice(ids)
            t = time.perf_counter()
            await repo.history(group.id, before, 50, uid)
            db_latencies.append(time.perf_counter() - t)
        await pool.close()
        latencies: list[float] = []
        for i in range(pages):
            before = 0 if i % 10 == 0 else random.choice(ids)
            t = time.perf_counter()
            page = await stub.GetMessageHistory(
                pb.GetHistoryRequest(group_id=group.id, before_id=before, limit=50), metadata=md)
            latencies.append(time.perf_counter() - t)
            assert len(page.messages) == 50 or not page.has_more
    # The same pages from a blocking grpcio client: less client-side overhead than asyncio's
    # (its event loop adds its own jitter to the tail), so closer to what the server costs.
    blocking = await asyncio.to_thread(blocking_pages, cluster.gateway, md, group.id, ids, pages)
    return {"messages": messages, "load_s": round(loaded, 1), "pages": pages,
            "grpc_p50_ms": pct(latencies, 0.5), "grpc_p99_ms": pct(latencies, 0.99),
            "grpc_blocking_client_p50_ms": pct(blocking, 0.5),
            "grpc_blocking_client_p99_ms": pct(blocking, 0.99),
            "storage_p50_ms": pct(db_latencies, 0.5), "storage_p99_ms": pct(db_latencies, 0.99)}


def blocking_pages(
    target: str, md: tuple[tuple[str, str], ...], group_id: int, ids: list[int], pages: int
) -> list[float]:
    latencies: list[float] = []
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.ChatServiceStub(channel)
        for i in range(pages):
            before = 0 if i % 10 == 0 else random.choice(ids)
            t = time.perf_counter()
            stub.GetMessageHistory(
                pb.GetHistoryRequest(group_id=group_id, before_id=before, limit=50), metadata=md)
            latencies.append(time.perf_counter() - t)
    return latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def py_spy(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes] | None:
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        print("py-spy is not installed in this venv; no profile", flush=True)
        return None
    return subprocess.Popen(
        [str(exe), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100",
         "--format", "raw", "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@dataclass
class NodeStorm:
    seconds: float
    replayed: int
    exact: bool  # every missed message once, in order, and nothing else
    retries: dict[str, int]
    client_cpu: float


async def node_storm(
    cluster: Cluster, subscribers: dict[int, tuple[int, int]], heads: dict[int, int],
    workers: int = 2,
) -> NodeStorm:
    """The storm from the lighter client (`loadtest/bench/node_worker.mjs`): every stream
    opened at once, resumed after a broken one, until each has every missed message."""
    subs = [(u, mint(cluster.jwt_secret, u), {gid: start})
            for u, (gid, start) in subscribers.items()]
    handles = [NodeWorkerHandle(i, cluster.gateway) for i in range(workers)]
    try:
        before = [cpu_seconds(h.proc.pid) for h in handles]
        started = time.monotonic()
        await call_all(handles, "setup", [
            {"subs": subs[i::workers], "senders": [], "open_at_once": 0, "timeout": 300}
            for i in range(workers)])
        drains = await call_all(handles, "drain", [{"heads": heads, "timeout": 300}] * workers)
        elapsed = time.monotonic() - started
        node_cpu = sum(cpu_seconds(h.proc.pid) - b for h, b in zip(handles, before, strict=True))
        await call_all(handles, "stop", [None] * workers)
    finally:
        for h in handles:
            h.close()
    expected = sum(heads[gid] - start for gid, start in subscribers.values())
    delivered = sum(d["deliveries"] for d in drains)
    retries: dict[str, int] = {}
    for d in drains:
        for name, n in d["stream_errors"].items():
            retries[name] = retries.get(name, 0) + n
    exact = delivered == expected and not any(
        d["duplicates"] or d["gaps"] or d["unexpected"] or d["missing"] for d in drains)
    return NodeStorm(elapsed, delivered, exact, retries, node_cpu)


async def storm(
    cluster: Cluster, subscribers: int, behind: int, profile: bool = False,
    client: str = "python",
) -> dict[str, object]:
    per_group = 100
    base = 71_000_000
    # One connection per channel (grpc-core shares one between channels to a target by
    # default), so that each carries at most 100 streams: Envoy's limit per connection.
    channels = [grpc.aio.insecure_channel(cluster.gateway, options=ONE_CONNECTION_EACH)
                for _ in range(subscribers // 100 + 1)]
    group_of: dict[int, int] = {}
    heads: dict[int, int] = {}
    stub = pb_grpc.ChatServiceStub(channels[0])
    for g in range(0, subscribers, per_group):
        owner = base + g
        uids = list(range(owner, min(owner + per_group, base + subscribers)))
        md = (("authorization", f"Bearer {mint(cluster.jwt_secret, owner)}"),)
        group = await stub.CreateGroup(pb.CreateGroupRequest(name=f"storm {g}",
                                                             member_ids=uids[1:]), metadata=md)
        for _ in range(behind):
            reply = await stub.SendMessage(pb.SendMessageRequest(group_id=group.id,
                                                                 content="missed"), metadata=md)
        heads[group.id] = reply.seq
        for u in uids:
            group_of[u] = group.id
    counts: dict[int, list[int]] = {u: [] for u in group_of}

    retries: dict[str, int] = {}
    caught_up: dict[int, asyncio.Future[None]] = {}

    async def resume(u: int, channel: grpc.aio.Channel) -> None:
        """Like a real client: resume from the last position (again after a refused or broken
        stream) and stay connected once caught up; the storm ends when every one is."""
        gid = group_of[u]
        token = mint(cluster.jwt_secret, u)
        done = caught_up[u]
        while True:
            seen = counts[u]
            position = pb.GroupPosition(group_id=gid,
                                        last_seq=seen[-1] if seen else heads[gid] - behind)
            call = pb_grpc.ChatServiceStub(channel).Subscribe(
                pb.SubscribeRequest(positions=[position]),
                metadata=(("authorization", f"Bearer {token}"),))
            try:
                async for response in call:
                    seen.extend(e.message.seq for e in response.events
                                if e.WhichOneof("event") == "message")
                    if len(seen) >= behind and not done.done():
                        done.set_result(None)
                return
            except asyncio.CancelledError:
                call.cancel()
                raise
            except grpc.aio.AioRpcError as exc:
                retries[exc.code().name] = retries.get(exc.code().name, 0) + 1
                await asyncio.sleep(0.2)

    pods = [svc.proc.pid for svc in cluster.services if svc.proc is not None]
    envoy = [cluster.envoy.pid] if cluster.envoy is not None else []
    profile_out = RESULTS_DIR / "profile-storm-pod.txt"
    spy = py_spy(pods[0], 10, profile_out) if profile else None
    pod_cpu, envoy_cpu = [cpu_seconds(p) for p in pods], [cpu_seconds(p) for p in envoy]
    own_cpu = time.process_time()
    if client == "node":
        for ch in channels:
            await ch.close()
        ran = await node_storm(
            cluster, {u: (gid, heads[gid] - behind) for u, gid in group_of.items()}, heads)
        elapsed, exact, replayed = ran.seconds, ran.exact, ran.replayed
        retries, node_cpu = ran.retries, ran.client_cpu
    else:
        loop = asyncio.get_running_loop()
        caught_up.update((u, loop.create_future()) for u in group_of)
        started = time.monotonic()
        clients = [asyncio.create_task(resume(u, channels[i // 100]))
                   for i, u in enumerate(group_of)]
        await asyncio.wait_for(asyncio.gather(*caught_up.values()), 300)
        elapsed = time.monotonic() - started
        node_cpu = 0.0
    pod_cpu = [cpu_seconds(p) - before for p, before in zip(pods, pod_cpu, strict=True)]
    envoy_cpu = [cpu_seconds(p) - before for p, before in zip(envoy, envoy_cpu, strict=True)]
    own_cpu = time.process_time() - own_cpu + node_cpu
    if client != "node":
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        exact = all(
            seqs == list(range(heads[group_of[u]] - behind + 1, heads[group_of[u]] + 1))
            for u, seqs in counts.items())
        replayed = sum(len(v) for v in counts.values())
        for ch in channels:
            await ch.close()
    profiled: dict[str, object] = {}
    if spy is not None:
        await asyncio.to_thread(spy.wait)
        profiled = {"profile": str(profile_out.relative_to(ROOT)),
                    "profile_top": summarize_raw(profile_out, top=15)["top_own"]}
    # "pod": every pod together (one pod by default, so older figures compare).
    cpu: dict[str, object] = {"pod": round(sum(pod_cpu), 2)}
    if len(pods) > 1:
        cpu["pods"] = [round(c, 2) for c in pod_cpu]
    if envoy_cpu:
        cpu["envoy"] = round(envoy_cpu[0], 2)
    cpu["load_generator"] = round(own_cpu, 2)
    return {"subscribers": subscribers, "behind": behind, "pods": len(pods),
            "envoy": bool(envoy), "client": client, "seconds": round(elapsed, 2),
            "replayed_messages": replayed,
            "every_message_once_in_order": exact, "stream_retries": retries,
            "cpu_seconds": cpu, **profiled}


async def main_async(
    messages: int, pages: int, subscribers: int, profile: bool, pods: int = 1,
    envoy: bool = False, client: str = "python",
) -> dict[str, object]:
    cluster = Cluster(pods=pods, with_envoy=envoy or pods > 1,
                      extra_env={"DB_POOL_MAX": "20"}).start()
    try:
        result: dict[str, object] = {"history": await history(cluster, messages, pages)}
        print(json.dumps(result), flush=True)
        result["reconnect_storm"] = await storm(cluster, subscribers, 100, profile, client)
        return result
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the pod for the first 10 s of the storm "
                             f"(raw stacks in {RESULTS_DIR.relative_to(ROOT)}/; "
                             "with several pods, of the first)")
    parser.add_argument("--pods", type=int, default=1,
                        help="service pods; more than 1 puts Envoy in front, as deployed "
                             "(default 1, no Envoy: the figures BENCHMARKS.md compares)")
    parser.add_argument("--envoy", action="store_true",
                        help="Envoy in front even of one pod")
    parser.add_argument("--client", choices=["python", "node"], default="python",
                        help="the storm's clients: python (grpc.aio, default) or node (the "
                             "lighter load generator of loadtest/bench, ~4x less CPU per delivery)")
    args = parser.parse_args()
    if args.pods < 1:
        parser.error("--pods must be at least 1")
    result = asyncio.run(main_async(args.messages, args.pages, args.subscribers, args.profile,
                                    args.pods, args.envoy, args.client))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
