"""The benchmark: a local cluster (3 pods, Envoy, PostgreSQL, Redis) under a measured load.

    .venv/bin/python -m loadtest.bench                 # full run, ~6 minutes
    .venv/bin/python -m loadtest.bench --quick         # smoke test, ~30 s
    .venv/bin/python -m loadtest.bench --scenario groups --duration 10

Scenarios (every client goes through Envoy, like a real deployment):

  groups   200 groups x 5 members, every member subscribed. Senders at fixed offered rates
           (open loop: sends are scheduled by the clock, not by the previous ack), then a
           closed-loop max-rate run, then a run at half the best acknowledged rate.
  fanout   one group of 500 members, then one of 1,000: every member subscribed (distinct
           tokens, so Envoy's ring hash spreads them over the pods), a few senders.

Measured per step: acknowledged sends/s and ack latency; deliveries/s and send->deliver latency
(the subscriber's clock on arrival minus the message's `timestamp_ms`, the commit time);
errors by status code; CPU% and RSS of every process; and correctness: every subscriber must
receive every message of its group exactly once and in seq order (duplicates, gaps and
messages missing at the end are counted and must be 0).

The load generator is `--workers` processes (asyncio + grpc.aio, several channels each) that
share the machine's cores with the cluster; its CPU is reported as `loadgen`.
Results: loadtest/results/<timestamp>.json and loadtest/results/latest.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc

from chat_devstack.tokens import DEV_JWT_SECRET, mint
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "loadtest" / "results"  # published results, committed
# What a run writes by default (JSON, latest.md, profiles, logs): ignored by git, so `make bench`
# leaves the tree clean; copy a run to RESULTS_DIR to publish it.
LOCAL_RESULTS_DIR = RESULTS_DIR / "local"

CONTENT = "benchmark message: a typical short chat line of about sixty characters"
# Streams per client connection: Envoy admits at most 100 concurrent streams per downstream
# connection (deploy/envoy/README.md); more would wait, unsubscribed, in the client.
SUBS_PER_CHANNEL = 100
SEND_CHANNELS = 4  # unary connections per worker
MAX_INFLIGHT = 1000  # per worker; beyond it an open-loop send is counted as not sent
SEND_TIMEOUT = 10.0
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.use_local_subchannel_pool", 1),  # one TCP connection per channel, not shared
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 60_000),
]

# ---------------------------------------------------------------------------------------------
# Latency histogram: buckets of 10 us below 10 ms, 0.1 ms below 100 ms, 1 ms below 1 s, then
# 10 ms. Mergeable across processes; percentiles are exact to the bucket width.
# ---------------------------------------------------------------------------------------------


def bucket(ms: float) -> float:
    if ms < 10.0:
        return round(ms, 2) if ms > 0.0 else 0.0
    if ms < 100.0:
        return round(ms, 1)
    if ms < 1000.0:
        return float(round(ms))
    return float(round(ms, -1))


class Hist:
    def __init__(self, counts: dict[float, int] | None = None) -> None:
        self.counts: dict[float, int] = counts if counts is not None else {}

    def add(self, ms: float) -> None:
        b = bucket(ms)
        self.counts[b] = self.counts.get(b, 0) + 1

    def merge(self, pairs: Iterable[Sequence[float]]) -> None:
        for value, count in pairs:
            self.counts[float(value)] = self.counts.get(float(value), 0) + int(count)

    def pairs(self) -> list[tuple[float, int]]:
        return sorted(self.counts.items())

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def percentile(self, q: float) -> float | None:
        total = self.total
        if total == 0:
            return None
        rank = max(1, int(q / 100.0 * total + 0.999999))
        seen = 0
        for value, count in sorted(self.counts.items()):
            seen += count
            if seen >= rank:
                return value
        return max(self.counts)

    def summary(self) -> dict[str, float | int | None]:
        return {
            "count": self.total,
            "p50": self.percentile(50),
            "p95": self.percentile(95),
            "p99": self.percentile(99),
            "max": max(self.counts) if self.counts else None,
        }


# ---------------------------------------------------------------------------------------------
# Load-generator worker process: subscribers and senders on grpc.aio, driven over a Pipe.
# ---------------------------------------------------------------------------------------------

SubSpec = tuple[int, str, dict[int, int]]  # user id, token, {group id: seq already seen}
SendSpec = tuple[int, str, int]  # user id, token, group id


class Sub:
    __slots__ = ("failed", "last", "md", "ready", "user_id")

    def __init__(self, user_id: int, token: str, heads: dict[int, int]) -> None:
        self.user_id = user_id
        self.md = (("authorization", f"Bearer {token}"),)
        self.last = dict(heads)  # group -> highest seq received in order
        self.ready = asyncio.Event()
        self.failed: str | None = None


@dataclass
class DeliverStats:
    deliveries: int = 0
    duplicates: int = 0  # a seq at or below one already received (duplicate or reordered)
    gaps: int = 0  # seqs skipped over
    unexpected: int = 0  # messages of a group the subscriber is not in
    batches: int = 0
    first_ms: float = 0.0
    last_ms: float = 0.0
    latency: Hist = field(default_factory=Hist)
    reconnects: int = 0
    stream_errors: Counter[str] = field(default_factory=Counter)


@dataclass
class SendStats:
    attempted: int = 0
    acked: int = 0
    not_sent: int = 0  # open loop only: the worker already had MAX_INFLIGHT sends waiting
    errors: Counter[str] = field(default_factory=Counter)
    latency: Hist = field(default_factory=Hist)
    start_ms: float = 0.0
    last_ack_ms: float = 0.0


class Worker:
    def __init__(self, conn: Connection, index: int, target: str) -> None:
        self.conn = conn
        self.index = index
        self.target = target
        self.channels: list[grpc.aio.Channel] = []
        self.subs: list[Sub] = []
        self.sub_tasks: list[asyncio.Task[None]] = []
        self.send_stubs: list[Any] = []
        self.senders: list[tuple[tuple[tuple[str, str]], int]] = []
        self.dstats = DeliverStats()
        self.sstats = SendStats()
        self.stopping = False
        self.counter = 0
        self.run_tag = f"{os.getpid()}-{random.randrange(1 << 30)}"
        self.inflight: set[asyncio.Task[None]] = set()

    def _channel(self) -> grpc.aio.Channel:
        options = [*CHANNEL_OPTIONS, ("bench.channel", len(self.channels))]
        ch = grpc.aio.insecure_channel(self.target, options=options)
        self.channels.append(ch)
        return ch

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            cmd, arg = await loop.run_in_executor(None, self.conn.recv)
            try:
                if cmd == "setup":
                    reply: Any = await self.setup(arg)
                elif cmd == "run":
                    reply = await self.run(arg)
                elif cmd == "drain":
                    reply = await self.drain(arg)
                elif cmd == "stop":
                    await self.stop()
                    self.conn.send(("ok", None))
                    return
                else:
                    raise ValueError(f"unknown command {cmd}")
            except Exception as exc:
                self.conn.send(("error", f"{type(exc).__name__}: {exc}"))
                continue
            self.conn.send(("ok", reply))

    # ---- subscribers ----

    async def setup(self, arg: dict[str, Any]) -> dict[str, Any]:
        subs: list[SubSpec] = arg["subs"]
        senders: list[SendSpec] = arg["senders"]
        self.send_stubs = [pb_grpc.ChatServiceStub(self._channel()) for _ in range(SEND_CHANNELS)]
        self.senders = [((("authorization", f"Bearer {tok}"),), gid) for _, tok, gid in senders]
        stub: Any = None
        opening = asyncio.Semaphore(50)
        for i, (uid, token, heads) in enumerate(subs):
            if i % SUBS_PER_CHANNEL == 0:
                stub = pb_grpc.ChatServiceStub(self._channel())
            sub = Sub(uid, token, heads)
            self.subs.append(sub)
            self.sub_tasks.append(asyncio.create_task(self._subscribe(sub, stub, opening)))
        started = time.monotonic()
        waits = [asyncio.create_task(s.ready.wait()) for s in self.subs]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=float(arg.get("timeout", 120)))
            for task in pending:
                task.cancel()
        ready = sum(1 for s in self.subs if s.ready.is_set())
        failed = Counter(s.failed for s in self.subs if s.failed and not s.ready.is_set())
        return {
            "subscribed": ready,
            "expected": len(self.subs),
            "seconds": round(time.monotonic() - started, 2),
            "failures": dict(failed),
        }

    async def _subscribe(self, sub: Sub, stub: Any, opening: asyncio.Semaphore) -> None:
        first = True
        while not self.stopping:
            positions = [pb.GroupPosition(group_id=g, last_seq=s) for g, s in sub.last.items()]
            call = stub.Subscribe(pb.SubscribeRequest(positions=positions), metadata=sub.md)
            try:
                if first:
                    async with opening:
                        await call.initial_metadata()
                    first = False
                else:
                    await call.initial_metadata()
                sub.ready.set()
                while True:
                    resp = await call.read()
                    if resp is grpc.aio.EOF:
                        break
                    self._on_batch(sub, resp)
                if not self.stopping:
                    self.dstats.stream_errors["ENDED_BY_SERVER"] += 1
            except asyncio.CancelledError:
                call.cancel()
                raise
            except grpc.aio.AioRpcError as exc:
                if self.stopping:
                    return
                sub.failed = exc.code().name
                self.dstats.stream_errors[exc.code().name] += 1
            if self.stopping:
                return
            # Resume from the last seq received: the documented client behaviour.
            self.dstats.reconnects += 1
            await asyncio.sleep(0.2)

    def _on_batch(self, sub: Sub, resp: Any) -> None:
        now = time.time() * 1000.0
        st = self.dstats
        last = sub.last
        counts = st.latency.counts
        n = 0
        for ev in resp.events:
            if ev.WhichOneof("event") != "message":
                continue
            m = ev.message
            gid = m.group_id
            seq = m.seq
            prev = last.get(gid)
            if prev is None:
                st.unexpected += 1
                continue
            if seq == prev + 1:
                last[gid] = seq
            elif seq <= prev:
                st.duplicates += 1
                continue
            else:
                st.gaps += seq - prev - 1
                last[gid] = seq
            n += 1
            b = bucket(now - m.timestamp_ms)
            counts[b] = counts.get(b, 0) + 1
        if n:
            st.deliveries += n
            st.batches += 1
            if not st.first_ms:
                st.first_ms = now
            st.last_ms = now

    # ---- senders ----

    async def _send(self, md: tuple[tuple[str, str]], gid: int) -> None:
        st = self.sstats
        self.counter += 1
        req = pb.SendMessageRequest(
            group_id=gid, content=CONTENT, client_msg_id=f"{self.run_tag}-{self.counter}"
        )
        stub = self.send_stubs[self.counter % len(self.send_stubs)]
        st.attempted += 1
        t0 = time.perf_counter()
        try:
            await stub.SendMessage(req, metadata=md, timeout=SEND_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            st.errors[exc.code().name] += 1
            return
        st.latency.add((time.perf_counter() - t0) * 1000.0)
        st.acked += 1
        st.last_ack_ms = time.time() * 1000.0

    async def run(self, arg: dict[str, Any]) -> dict[str, Any]:
        self.sstats = SendStats(start_ms=time.time() * 1000.0)
        self.dstats = DeliverStats(reconnects=0)
        duration = float(arg["duration"])
        if not self.senders:
            await asyncio.sleep(duration)
        elif arg["mode"] == "open":
            await self._open_loop(float(arg["rate"]), duration)
        else:
            await self._closed_loop(int(arg["concurrency"]), duration)
        st = self.sstats
        return {
            "attempted": st.attempted,
            "acked": st.acked,
            "not_sent": st.not_sent,
            "errors": dict(st.errors),
            "latency": st.latency.pairs(),
            "start_ms": st.start_ms,
            "last_ack_ms": st.last_ack_ms,
        }

    async def _open_loop(self, rate: float, duration: float) -> None:
        loop = asyncio.get_running_loop()
        total = int(rate * duration)
        interval = 1.0 / rate
        senders = self.senders
        start = loop.time()
        n = 0
        while n < total:
            due = min(total, int((loop.time() - start) / interval) + 1)
            while n < due:
                if len(self.inflight) >= MAX_INFLIGHT:
                    self.sstats.not_sent += 1
                else:
                    md, gid = senders[n % len(senders)]
                    task = asyncio.create_task(self._send(md, gid))
                    self.inflight.add(task)
                    task.add_done_callback(self.inflight.discard)
                n += 1
            if n < total:
                await asyncio.sleep(max(0.0, start + n * interval - loop.time()))
        if self.inflight:
            await asyncio.wait(list(self.inflight))

    async def _closed_loop(self, concurrency: int, duration: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + duration
        senders = self.senders

        async def lane(k: int) -> None:
            i = k
            while loop.time() < end:
                md, gid = senders[i % len(senders)]
                await self._send(md, gid)
                i += concurrency

        await asyncio.gather(*(lane(k) for k in range(concurrency)))

    # ---- end of a step ----

    async def drain(self, arg: dict[str, Any]) -> dict[str, Any]:
        heads: dict[int, int] = arg["heads"]
        deadline = time.monotonic() + float(arg["timeout"])

        def behind() -> int:
            return sum(
                max(0, heads.get(g, s) - s) for sub in self.subs for g, s in sub.last.items()
            )

        missing = behind()
        while missing and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            missing = behind()
        st = self.dstats
        return {
            "deliveries": st.deliveries,
            "duplicates": st.duplicates,
            "gaps": st.gaps,
            "unexpected": st.unexpected,
            "missing": missing,
            "batches": st.batches,
            "first_ms": st.first_ms,
            "last_ms": st.last_ms,
            "latency": st.latency.pairs(),
            "reconnects": st.reconnects,
            "stream_errors": dict(st.stream_errors),
            "subscribers_down": sum(1 for t in self.sub_tasks if t.done()),
        }

    async def stop(self) -> None:
        self.stopping = True
        for task in self.sub_tasks:
            task.cancel()
        for task in self.sub_tasks:
            with contextlib.suppress(BaseException):
                await task
        for ch in self.channels:
            await ch.close()


def worker_main(conn: Connection, index: int, target: str, use_uvloop: bool) -> None:
    worker = Worker(conn, index, target)
    if use_uvloop:
        try:
            import uvloop
        except ImportError:  # pragma: no cover
            use_uvloop = False
    if use_uvloop:
        uvloop.run(worker.serve())
    else:
        asyncio.run(worker.serve())


class WorkerHandle:
    def __init__(self, index: int, target: str, use_uvloop: bool) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=worker_main, args=(child, index, target, use_uvloop), daemon=True
        )
        self.proc.start()
        child.close()

    async def call(self, cmd: str, arg: Any = None) -> Any:
        self.conn.send((cmd, arg))
        status, reply = await asyncio.to_thread(self.conn.recv)
        if status != "ok":
            raise RuntimeError(f"worker {self.proc.pid} failed {cmd}: {reply}")
        return reply

    def close(self) -> None:
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


async def call_all(workers: Sequence[WorkerHandle], cmd: str, args: Sequence[Any]) -> list[Any]:
    return list(await asyncio.gather(*(w.call(cmd, a) for w, a in zip(workers, args, strict=True))))


# ---------------------------------------------------------------------------------------------
# Resource sampling (psutil) and server-side counters (/metrics of each pod).
# ---------------------------------------------------------------------------------------------


class Sampler:
    """CPU% (user+system, 100 = one core) and peak memory of named process groups over a window.

    Memory is RSS, except for groups sampled with their children (PostgreSQL), where it is the
    PSS summed over the processes (RSS would count shared buffers once per backend).
    """

    def __init__(self, groups: dict[str, list[int]], include_children: set[str]) -> None:
        self._psutil: Any = importlib.import_module("psutil")
        self.groups = groups
        self.include_children = include_children
        self._base: dict[int, float] = {}
        self._latest: dict[int, float] = {}
        self._rss: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._t0 = 0.0
        self._m0 = (0.0, 0.0)

    def _procs(self, name: str) -> list[Any]:
        out: list[Any] = []
        for pid in self.groups[name]:
            try:
                p = self._psutil.Process(pid)
                out.append(p)
                if name in self.include_children:
                    out.extend(p.children(recursive=True))
            except self._psutil.Error:
                continue
        return out

    def _sample(self) -> None:
        for name in self.groups:
            rss = 0.0
            for p in self._procs(name):
                try:
                    with p.oneshot():
                        t = p.cpu_times()
                        self._latest[p.pid] = t.user + t.system
                        if name in self.include_children:
                            # Shared buffers are mapped by every backend: PSS, not RSS, sums.
                            rss += p.memory_full_info().pss
                        else:
                            rss += p.memory_info().rss
                except self._psutil.Error:
                    continue
                self._base.setdefault(p.pid, self._latest[p.pid] if self._t0 == 0.0 else 0.0)
            self._rss[name] = max(self._rss.get(name, 0.0), rss)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self._sample()

    def _machine(self) -> tuple[float, float]:
        t = self._psutil.cpu_times()
        idle = t.idle + getattr(t, "iowait", 0.0)
        return sum(t) - idle - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0), idle

    def start(self) -> None:
        self._base, self._latest, self._rss = {}, {}, {}
        self._m0 = self._machine()
        self._t0 = 0.0
        self._sample()  # baseline: processes alive now count from here
        self._t0 = time.monotonic()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> dict[str, dict[str, float]]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample()
        wall = max(1e-6, time.monotonic() - self._t0)
        out: dict[str, dict[str, float]] = {}
        for name in self.groups:
            pids = {p.pid for p in self._procs(name)} | set(self.groups[name])
            cpu = sum(self._latest.get(pid, 0.0) - self._base.get(pid, 0.0) for pid in pids)
            out[name] = {
                "cpu_pct": round(100.0 * cpu / wall, 1),
                "rss_mb": round(self._rss.get(name, 0.0) / 2**20, 1),
            }
        # Everything else on the machine (kernel softirq for loopback, other people's jobs on
        # a shared machine) and what was left idle, in the same unit (% of one core).
        busy1, idle1 = self._machine()
        busy = 100.0 * (busy1 - self._m0[0]) / wall
        tracked = sum(v["cpu_pct"] for v in out.values())
        out["other"] = {"cpu_pct": round(max(0.0, busy - tracked), 1), "rss_mb": 0.0}
        out["idle"] = {"cpu_pct": round(100.0 * (idle1 - self._m0[1]) / wall, 1), "rss_mb": 0.0}
        return out


SERVER_COUNTERS = (
    "chat_gap_fills_total",
    "chat_subscribers_dropped_total",
    "chat_db_errors_total",
    "chat_redis_errors_total",
    "chat_messages_accepted_total",
    "chat_events_delivered_total",
    "chat_stream_writes_total",
)


def scrape(ports: Sequence[int]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for port in ports:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            name_labels, _, value = line.rpartition(" ")
            name = name_labels.split("{", 1)[0]
            if name in SERVER_COUNTERS:
                key = name_labels.replace('"', "'")
                totals[key] = totals.get(key, 0.0) + float(value)
    return totals


# ---------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------


@dataclass
class Options:
    quick: bool
    duration: float
    workers: int
    group_count: int
    group_size: int
    rates: list[float]
    closed_concurrency: int
    fanout_sizes: list[int]
    fanout_rates: list[float]
    fanout_senders: int
    profile: bool
    uvloop: bool
    profile_native: bool = False
    report: Path | None = None
    keep_logs: bool = False
    output: Path | None = None


class Bench:
    def __init__(self, cluster: Any, opts: Options) -> None:
        self.c = cluster
        self.opts = opts
        self.secret: str = cluster.jwt_secret
        self.next_user = random.randint(1_000, 9_000) * 1_000_000
        self.profiles: list[dict[str, Any]] = []
        self.stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")

    def users(self, n: int) -> list[tuple[int, str]]:
        out = []
        for _ in range(n):
            self.next_user += 1
            uid = self.next_user
            out.append((uid, mint(self.secret, uid, name=f"bench{uid}", ttl=6 * 3600)))
        return out

    async def create_groups(self, members: list[list[tuple[int, str]]]) -> list[int]:
        """Each list's first user creates a group with the others as members."""
        ids: list[int] = [0] * len(members)
        limit = asyncio.Semaphore(20)
        async with grpc.aio.insecure_channel(self.c.gateway, options=CHANNEL_OPTIONS) as ch:
            stub: Any = pb_grpc.ChatServiceStub(ch)

            async def one(i: int, group: list[tuple[int, str]]) -> None:
                owner_token = group[0][1]
                req = pb.CreateGroupRequest(
                    name=f"bench {i}", member_ids=[uid for uid, _ in group[1:]]
                )
                async with limit:
                    g = await stub.CreateGroup(
                        req, metadata=(("authorization", f"Bearer {owner_token}"),), timeout=60
                    )
                ids[i] = g.id

            await asyncio.gather(*(one(i, g) for i, g in enumerate(members)))
        return ids

    async def heads(self, group_ids: Sequence[int]) -> dict[int, int]:
        import asyncpg

        pg = self.c.postgres
        conn = await asyncpg.connect(
            host="127.0.0.1", port=pg.port, user=pg.user, password=pg.password,
            database=pg.database,
        )
        try:
            rows = await conn.fetch(
                "SELECT id, last_seq FROM groups WHERE id = ANY($1::bigint[])", list(group_ids)
            )
        finally:
            await conn.close()
        return {int(r["id"]): int(r["last_seq"]) for r in rows}

    def process_groups(self, workers: Sequence[WorkerHandle]) -> dict[str, list[int]]:
        pg_pid = int((self.c.postgres.data_dir / "postmaster.pid").read_text().split()[0])
        groups: dict[str, list[int]] = {}
        for i, svc in enumerate(self.c.services):
            groups[f"pod{i}"] = [svc.proc.pid]
        groups["envoy"] = [self.c.envoy.pid]
        groups["postgres"] = [pg_pid]
        redis_proc = getattr(self.c.redis, "_proc", None)
        if redis_proc is not None:
            groups["redis"] = [redis_proc.pid]
        groups["loadgen"] = [os.getpid(), *(w.proc.pid for w in workers if w.proc.pid)]
        return groups

    async def start_workers(
        self, subs: list[SubSpec], senders: list[SendSpec], key: Callable[[int], int]
    ) -> tuple[list[WorkerHandle], list[dict[str, Any]]]:
        """Start the worker processes; subscriber/sender i goes to worker key(i)."""
        n = self.opts.workers
        workers = [WorkerHandle(i, self.c.gateway, self.opts.uvloop) for i in range(n)]
        sub_parts: list[list[SubSpec]] = [[] for _ in range(n)]
        send_parts: list[list[SendSpec]] = [[] for _ in range(n)]
        for i, s in enumerate(subs):
            sub_parts[key(i) % n].append(s)
        for i, t in enumerate(senders):
            send_parts[i % n].append(t)
        args = [{"subs": sub_parts[i], "senders": send_parts[i]} for i in range(n)]
        try:
            replies = await call_all(workers, "setup", args)
        except BaseException:
            await self.stop_workers(workers)
            raise
        return workers, replies

    async def stop_workers(self, workers: Sequence[WorkerHandle]) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(call_all(workers, "stop", [None] * len(workers)), 30)
        for w in workers:
            w.close()

    async def step(
        self,
        name: str,
        workers: Sequence[WorkerHandle],
        group_ids: Sequence[int],
        members_per_group: dict[int, int],
        heads_before: dict[int, int],
        *,
        mode: str,
        rate: float = 0.0,
        concurrency: int = 0,
        duration: float,
        profile: bool = False,
    ) -> dict[str, Any]:
        n = len(workers)
        if mode == "open":
            args = [{"mode": "open", "rate": rate / n, "duration": duration}] * n
        else:
            args = [{"mode": "closed", "concurrency": max(1, concurrency // n),
                     "duration": duration}] * n
        sampler = Sampler(self.process_groups(workers), include_children={"postgres"})
        metrics_ports = [s.metrics_port for s in self.c.services if s.metrics_port]
        before = await asyncio.to_thread(scrape, metrics_ports)
        spy: asyncio.Task[dict[str, Any] | None] | None = None
        if profile:
            spy = asyncio.create_task(self.py_spy(name, duration))
        sampler.start()
        sends = await call_all(workers, "run", args)
        heads = await self.heads(group_ids)
        delivers = await call_all(workers, "drain", [{"heads": heads, "timeout": 20.0}] * n)
        resources = await sampler.stop()
        after = await asyncio.to_thread(scrape, metrics_ports)
        if spy is not None:
            prof = await spy
            if prof is not None:
                self.profiles.append(prof)

        ack = Hist()
        errors: Counter[str] = Counter()
        for s in sends:
            ack.merge(s["latency"])
            errors.update(s["errors"])
        start_ms = min(s["start_ms"] for s in sends)
        last_ack = max((s["last_ack_ms"] for s in sends), default=0.0)
        acked = sum(s["acked"] for s in sends)
        send_window = max(duration, (last_ack - start_ms) / 1000.0) if acked else duration
        deliver = Hist()
        stream_errors: Counter[str] = Counter()
        for d in delivers:
            deliver.merge(d["latency"])
            stream_errors.update(d["stream_errors"])
        deliveries = sum(d["deliveries"] for d in delivers)
        last_delivery = max((d["last_ms"] for d in delivers), default=0.0)
        deliver_window = max(duration, (last_delivery - start_ms) / 1000.0)
        committed = sum(heads[g] - heads_before.get(g, heads[g]) for g in group_ids)
        expected = sum(
            (heads[g] - heads_before.get(g, heads[g])) * members_per_group[g] for g in group_ids
        )
        counters = {k: round(v - before.get(k, 0.0)) for k, v in after.items()
                    if v - before.get(k, 0.0)}
        result: dict[str, Any] = {
            "step": name,
            "mode": mode,
            "offered_per_s": round(rate) if mode == "open" else None,
            "concurrency": concurrency if mode == "closed" else None,
            "duration_s": duration,
            "attempted": sum(s["attempted"] for s in sends),
            "acked": acked,
            "committed": committed,
            "not_sent": sum(s["not_sent"] for s in sends),
            "acked_per_s": round(acked / send_window, 1),
            "send_errors": dict(errors),
            "ack_ms": ack.summary(),
            "deliveries": deliveries,
            "expected_deliveries": expected,
            "deliveries_per_s": round(deliveries / deliver_window, 1),
            "deliver_ms": deliver.summary(),
            "duplicates": sum(d["duplicates"] for d in delivers),
            "gaps": sum(d["gaps"] for d in delivers),
            "missing": sum(d["missing"] for d in delivers),
            "unexpected": sum(d["unexpected"] for d in delivers),
            "reconnects": sum(d["reconnects"] for d in delivers),
            "stream_errors": dict(stream_errors),
            "subscribers_down": sum(d["subscribers_down"] for d in delivers),
            "resources": resources,
            # CPU cost normalised by work done: what a core buys, whatever the machine.
            "cpu_ms_per_ack": {
                k: round(v["cpu_pct"] * 10.0 / (acked / send_window), 3)
                for k, v in resources.items()
            } if acked else {},
            "cpu_us_per_delivery": {
                k: round(v["cpu_pct"] * 1e4 / (deliveries / deliver_window), 2)
                for k, v in resources.items()
            } if deliveries else {},
            "server_counters": counters,
        }
        for g in group_ids:
            heads_before[g] = heads[g]
        print(one_line(result), flush=True)
        return result

    async def py_spy(self, name: str, duration: float) -> dict[str, Any] | None:
        """Sample pod0 with py-spy during the step; keep the top frames by own time."""
        exe = Path(sys.executable).parent / "py-spy"
        if not exe.exists():
            return None
        pod = self.c.services[0]
        slug = "".join(ch if ch.isalnum() else "-" for ch in name).strip("-")
        out = LOCAL_RESULTS_DIR / f"profile-{self.stamp}-{slug}-pod0.txt"
        mode = ["--native"] if self.opts.profile_native else ["--nonblocking"]
        proc = await asyncio.create_subprocess_exec(
            str(exe), "record", "--pid", str(pod.proc.pid), "--duration",
            str(max(1, int(duration))), "--rate", "100", "--format", "raw", *mode,
            "--output", str(out),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        await proc.wait()
        if not out.exists():
            return None
        return {"step": name, "file": str(out.relative_to(ROOT)), **summarize_raw(out)}

    # ---- scenarios ----

    async def scenario_groups(self) -> dict[str, Any]:
        o = self.opts
        members = [self.users(o.group_size) for _ in range(o.group_count)]
        t0 = time.monotonic()
        gids = await self.create_groups(members)
        heads_before = await self.heads(gids)
        created_s = time.monotonic() - t0
        subs: list[SubSpec] = []
        senders: list[SendSpec] = []
        group_of_sub: list[int] = []
        for gi, (gid, group) in enumerate(zip(gids, members, strict=True)):
            for uid, token in group:
                subs.append((uid, token, {gid: heads_before[gid]}))
                senders.append((uid, token, gid))
                group_of_sub.append(gi)
        t0 = time.monotonic()
        # A group's subscribers and senders stay in one worker: members of a group interleave.
        senders.sort(key=lambda s: s[0] % o.group_size)
        workers, setup = await self.start_workers(subs, senders, lambda i: group_of_sub[i])
        print(f"groups: {len(gids)} groups x {o.group_size} created in {created_s:.1f}s; "
              f"{sum(r['subscribed'] for r in setup)}/{len(subs)} subscribed in "
              f"{time.monotonic() - t0:.1f}s", flush=True)
        size = dict.fromkeys(gids, o.group_size)
        steps: list[dict[str, Any]] = []
        try:
            warm = min(3.0, o.duration)
            await self.step("warmup", workers, gids, size, heads_before, mode="closed",
                            concurrency=16, duration=warm)
            for rate in o.rates:
                steps.append(await self.step(f"open {rate:g}/s", workers, gids, size,
                                             heads_before, mode="open", rate=rate,
                                             duration=o.duration))
            steps.append(await self.step("max (closed loop)", workers, gids, size,
                                         heads_before, mode="closed",
                                         concurrency=o.closed_concurrency, duration=o.duration,
                                         profile=o.profile))
            best = max(s["acked_per_s"] for s in steps)
            half = max(1.0, round(best / 2))
            steps.append(await self.step(f"half of max ({half:g}/s)", workers, gids, size,
                                         heads_before, mode="open", rate=half,
                                         duration=o.duration))
            steps[-1]["half_of_max"] = True
        finally:
            await self.stop_workers(workers)
        return {
            "groups": len(gids),
            "group_size": o.group_size,
            "subscribers": len(subs),
            "subscribed": sum(r["subscribed"] for r in setup),
            "setup": setup,
            "steps": steps,
        }

    async def scenario_fanout(self, size: int) -> dict[str, Any]:
        o = self.opts
        group = self.users(size)
        t0 = time.monotonic()
        (gid,) = await self.create_groups([group])
        heads_before = await self.heads([gid])
        created_s = time.monotonic() - t0
        subs: list[SubSpec] = [(uid, tok, {gid: heads_before[gid]}) for uid, tok in group]
        senders: list[SendSpec] = [(uid, tok, gid) for uid, tok in group[: o.fanout_senders]]
        t0 = time.monotonic()
        workers, setup = await self.start_workers(subs, senders, lambda i: i)
        print(f"fanout: group of {size} created in {created_s:.1f}s; "
              f"{sum(r['subscribed'] for r in setup)}/{size} subscribed in "
              f"{time.monotonic() - t0:.1f}s", flush=True)
        steps: list[dict[str, Any]] = []
        try:
            await self.step("warmup", workers, [gid], {gid: size}, heads_before,
                            mode="open", rate=10, duration=min(2.0, o.duration))
            for i, rate in enumerate(o.fanout_rates):
                last = i == len(o.fanout_rates) - 1
                steps.append(await self.step(
                    f"{size} subs, {rate:g} msg/s", workers, [gid], {gid: size}, heads_before,
                    mode="open", rate=rate, duration=o.duration,
                    profile=o.profile and last and size == max(o.fanout_sizes),
                ))
        finally:
            await self.stop_workers(workers)
        return {
            "members": size,
            "subscribed": sum(r["subscribed"] for r in setup),
            "senders": len(senders),
            "setup": setup,
            "steps": steps,
        }


def summarize_raw(path: Path, top: int = 25) -> dict[str, Any]:
    """py-spy raw (collapsed) stacks: the frames where most samples were taken (own time)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            if "chat_service/" in frame or "asyncpg/" in frame or "redis/" in frame:
                inclusive[frame] += n

    def pct(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"frame": frame, "pct": round(100.0 * n / total, 1)}
            for frame, n in counter.most_common(top)
        ] if total else []

    return {"samples": total, "top_own": pct(own), "top_inclusive": pct(inclusive)}


def one_line(r: dict[str, Any]) -> str:
    d, a = r["deliver_ms"], r["ack_ms"]
    res = r["resources"]
    cpu = " ".join(f"{k}={v['cpu_pct']:.0f}%" for k, v in res.items())
    errs = sum(r["send_errors"].values())
    return (
        f"  {r['step']:<24} acked {r['acked_per_s']:>8.1f}/s  ack p50/p99 "
        f"{fmt(a['p50'])}/{fmt(a['p99'])} ms  deliveries {r['deliveries_per_s']:>9.1f}/s  "
        f"deliver p50/p95/p99 {fmt(d['p50'])}/{fmt(d['p95'])}/{fmt(d['p99'])} ms  "
        f"errors {errs} dup {r['duplicates']} gap {r['gaps']} missing {r['missing']}  "
        f"cpu {cpu}"
    )


def _cpu(resources: dict[str, Any], name: str) -> str:
    """CPU% of a process group, '-' when the run did not record it."""
    entry = resources.get(name)
    return "-" if entry is None else f"{entry['cpu_pct']:.0f}"


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Benchmark results ({result['started']})",
        "",
        f"Machine: {result['machine']['cpus']} cores ({result['machine']['cpu_model']}), "
        f"Python {result['machine']['python']}, grpcio {result['machine']['grpcio']}, "
        f"commit {result['machine'].get('commit') or '?'}; "
        "everything on loopback on this one machine (3 pods, Envoy, PostgreSQL, Redis and the "
        f"load generator: {result['options']['workers']} worker processes). Command: "
        f"`{result['command']}`. Latencies in ms; CPU in % of one core, averaged over the "
        "step (`other`: the rest of the machine - kernel, other jobs; `idle`: unused); "
        "send→deliver = subscriber clock at arrival - the message's `timestamp_ms`.",
        "",
    ]
    header = (
        "| step | offered/s | acked/s | ack p50 | ack p99 | deliveries/s | deliver p50 "
        "| deliver p95 | deliver p99 | errors | dup/gap/missing | CPU pods | envoy | pg | "
        "redis | loadgen | other | idle |"
    )
    sep = "|" + "---|" * 18
    for key, title in (("groups", "Scenario groups"), ("fanout", "Scenario fanout")):
        runs = result["scenarios"].get(key)
        if not runs:
            continue
        for run in runs if isinstance(runs, list) else [runs]:
            if "members" in run:
                lines.append(f"## {title}: one group of {run['members']} members "
                             f"({run['subscribed']} subscribed, {run['senders']} senders)")
            else:
                lines.append(f"## {title}: {run['groups']} groups x {run['group_size']} "
                             f"({run['subscribed']}/{run['subscribers']} subscribed)")
            lines += ["", header, sep]
            for r in run["steps"]:
                res = r["resources"]
                pods = "+".join(f"{v['cpu_pct']:.0f}" for k, v in res.items()
                                if k.startswith("pod"))
                offered = (str(r["offered_per_s"]) if r["offered_per_s"] is not None
                           else f"closed c={r['concurrency']}")
                errs = ", ".join(f"{k} {v}" for k, v in r["send_errors"].items()) or "0"
                if r["not_sent"]:
                    errs += f", not sent {r['not_sent']}"
                d, a = r["deliver_ms"], r["ack_ms"]
                lines.append(
                    f"| {r['step']} | {offered} | {r['acked_per_s']:.0f} | {fmt(a['p50'])} | "
                    f"{fmt(a['p99'])} | {r['deliveries_per_s']:.0f} | {fmt(d['p50'])} | "
                    f"{fmt(d['p95'])} | {fmt(d['p99'])} | {errs} | "
                    f"{r['duplicates']}/{r['gaps']}/{r['missing']} | {pods} | "
                    f"{res['envoy']['cpu_pct']:.0f} | {res['postgres']['cpu_pct']:.0f} | "
                    f"{res.get('redis', {}).get('cpu_pct', 0):.0f} | "
                    f"{res['loadgen']['cpu_pct']:.0f} | "
                    f"{_cpu(res, 'other')} | {_cpu(res, 'idle')} |"
                )
            lines.append("")
            rss = run["steps"][-1]["resources"] if run["steps"] else {}
            if rss:
                lines.append("Peak memory in the last step (MB; RSS, PostgreSQL: PSS of all "
                             "its processes): " + ", ".join(
                    f"{k} {v['rss_mb']:.0f}" for k, v in rss.items()
                    if k not in ("other", "idle")))
                lines.append("")
    for p in result.get("profiles", []):
        lines.append(f"py-spy, pod0, step `{p['step']}` ({p['samples']} samples, own time; "
                     f"raw stacks: `{p['file']}`; without --native, time in C code under the "
                     "event loop - grpc core, uvloop, protobuf - shows as `Runner.run`):")
        lines.append("")
        for f in p["top_own"][:12]:
            lines.append(f"- {f['pct']}% {f['frame']}")
        lines.append("")
    verdict = "PASS" if result["correct"] else "FAIL"
    lines.append(f"Correctness (every subscriber got every message once, in order): {verdict}")
    lines.append("")
    return "\n".join(lines)


def ensure_packages() -> None:
    """psutil is needed for the resource figures; install it into this venv if missing."""
    try:
        importlib.import_module("psutil")
    except ImportError:
        print("installing psutil into the venv", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "psutil"], check=True)


def parse_args(argv: Sequence[str] | None) -> tuple[Options, list[str]]:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="small and short: a smoke test")
    p.add_argument("--scenario", choices=["all", "groups", "fanout"], default="all")
    p.add_argument("--duration", type=float, help="seconds per measured step (default 20)")
    p.add_argument("--workers", type=int, default=2, help="load-generator processes")
    p.add_argument("--rates", help="offered msg/s steps of scenario groups, comma-separated")
    p.add_argument("--fanout-sizes", help="group sizes of scenario fanout, comma-separated")
    p.add_argument("--fanout-rates", help="offered msg/s steps of scenario fanout")
    p.add_argument("--profile", action="store_true",
                   help="py-spy pod0 during the max-rate and largest fan-out steps")
    p.add_argument("--profile-native", action="store_true",
                   help="with --profile: include native frames (grpc core, uvloop); pauses "
                   "the pod at each sample, so it slows it down")
    p.add_argument("--keep-logs", action="store_true",
                   help="copy the pods' and Envoy's logs to results/local/logs-<timestamp>/")
    p.add_argument("--no-uvloop", action="store_true", help="plain asyncio in the workers")
    p.add_argument("--output", type=Path,
                   help="result JSON (default results/local/<timestamp>.json, ignored by git, "
                   "with results/local/latest.md; with --output latest.md is left alone)")
    p.add_argument("--report", type=Path, metavar="JSON",
                   help="no run: rewrite the published results/latest.md from a result JSON")
    args = p.parse_args(argv)

    def floats(text: str | None, default: list[float]) -> list[float]:
        return [float(x) for x in text.split(",")] if text else default

    if args.quick:
        opts = Options(
            quick=True, duration=args.duration or 3.0, workers=args.workers, group_count=20,
            group_size=5, rates=floats(args.rates, [200.0]), closed_concurrency=16,
            fanout_sizes=[int(x) for x in floats(args.fanout_sizes, [100.0])],
            fanout_rates=floats(args.fanout_rates, [20.0]), fanout_senders=2,
            profile=args.profile, uvloop=not args.no_uvloop,
        )
    else:
        opts = Options(
            quick=False, duration=args.duration or 20.0, workers=args.workers, group_count=200,
            group_size=5, rates=floats(args.rates, [500.0, 1000.0, 2000.0, 4000.0]),
            closed_concurrency=128,
            fanout_sizes=[int(x) for x in floats(args.fanout_sizes, [500.0, 1000.0])],
            fanout_rates=floats(args.fanout_rates, [50.0, 100.0, 200.0, 250.0]), fanout_senders=4,
            profile=args.profile, uvloop=not args.no_uvloop,
        )
    opts.output = args.output
    opts.profile_native = args.profile_native
    opts.report = args.report
    opts.keep_logs = args.keep_logs
    scenarios = ["groups", "fanout"] if args.scenario == "all" else [args.scenario]
    return opts, scenarios


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
            text=True, timeout=10,
        ).stdout.strip()
    return {
        "commit": commit,
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "platform": platform.platform(),
    }


def copy_logs(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*.log"):
        shutil.copy(path, target / path.name)


def is_correct(result: dict[str, Any]) -> bool:
    for runs in result["scenarios"].values():
        for run in runs if isinstance(runs, list) else [runs]:
            for s in run["steps"]:
                if s["duplicates"] or s["gaps"] or s["missing"] or s["unexpected"]:
                    return False
                if run.get("subscribed") != run.get("subscribers", run.get("members")):
                    return False
    return True


async def amain(opts: Options, scenarios: list[str], command: str) -> dict[str, Any]:
    from chat_devstack.cluster import Cluster

    started = dt.datetime.now(dt.UTC)
    psutil: Any = importlib.import_module("psutil")
    busy_before = await asyncio.to_thread(psutil.cpu_percent, 3.0)
    if busy_before > 25.0:
        print(f"warning: the machine is already {busy_before:.0f}% busy before the benchmark "
              "starts; figures will be low (see the `other` column)", flush=True)
    t0 = time.monotonic()
    cluster = Cluster(
        pods=3, with_envoy=True, with_metrics=True, jwt_secret=DEV_JWT_SECRET,
        # Capacity is what is measured: per-user/per-group send limits and the streams-per-user
        # cap off (unknown settings are ignored by older versions of the service).
        extra_env={
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_USER_SEND": "off",
            "RATE_LIMIT_GROUP_SEND": "off",
            "RATE_LIMIT_GROUPS_CREATED": "off",
            "RATE_LIMIT_TYPING": "off",
            "MAX_STREAMS_PER_USER": "100000",
        },
    )
    await asyncio.to_thread(cluster.start)
    print(f"cluster up in {time.monotonic() - t0:.1f}s:\n{cluster.describe()}", flush=True)
    bench = Bench(cluster, opts)
    result: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%d %H:%M:%SZ"),
        "command": command,
        "machine": {**machine(), "busy_before_pct": busy_before},
        "options": {k: (str(v) if isinstance(v, Path) else v)
                    for k, v in opts.__dict__.items()},
        "scenarios": {},
    }
    try:
        if "groups" in scenarios:
            result["scenarios"]["groups"] = await bench.scenario_groups()
        if "fanout" in scenarios:
            result["scenarios"]["fanout"] = [
                await bench.scenario_fanout(size) for size in opts.fanout_sizes
            ]
    finally:
        if opts.keep_logs:
            logs = LOCAL_RESULTS_DIR / f"logs-{bench.stamp}"
            await asyncio.to_thread(copy_logs, Path(cluster.base_dir), logs)
            result["logs"] = str(logs.relative_to(ROOT))
        await asyncio.to_thread(cluster.stop)
    result["profiles"] = bench.profiles
    result["correct"] = is_correct(result)
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    opts, scenarios = parse_args(argv)
    if opts.report is not None:
        md = markdown(json.loads(opts.report.read_text()))
        (RESULTS_DIR / "latest.md").write_text(md)
        print(md)
        return 0
    ensure_packages()
    command = "python -m loadtest.bench " + " ".join(sys.argv[1:] if argv is None else argv)
    LOCAL_RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(amain(opts, scenarios, command.strip()))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = opts.output or LOCAL_RESULTS_DIR / f"{stamp}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    md = markdown(result)
    write_latest = not opts.quick and opts.output is None
    latest = LOCAL_RESULTS_DIR / "latest.md"
    if write_latest:
        latest.write_text(md)
    print("\n" + md)
    print(f"results: {out}" + (f" and {latest}" if write_latest else ""))
    print(f"elapsed {result['elapsed_s']}s")
    return 0 if result["correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
