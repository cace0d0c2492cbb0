"""Orchestration: the measured steps and the scenarios (groups, fan-out)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc
from loadtest.bench.constants import (
    CHANNEL_OPTIONS,
    LOCAL_RESULTS_DIR,
    ROOT,
    SendSpec,
    SubSpec,
)
from loadtest.bench.histograms import Hist
from loadtest.bench.report import one_line, summarize_raw
from loadtest.bench.sampler import Sampler, scrape
from loadtest.bench.workers import AnyWorker, NodeWorkerHandle, WorkerHandle, call_all


def merge_replies(replies: Sequence[dict[str, Any]], errors_key: str) -> tuple[Hist, Counter[str]]:
    """The workers' latency histograms merged, and their error counts (under errors_key) summed."""
    hist = Hist()
    errors: Counter[str] = Counter()
    for reply in replies:
        hist.merge(reply["latency"])
        errors.update(reply[errors_key])
    return hist, errors


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
    seed_size: int
    seed_rates: list[float]
    profile: bool
    uvloop: bool
    profile_native: bool = False
    client: str = "python"  # the load generator's workers: "python" (grpc.aio) or "node"
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

    def process_groups(self, workers: Sequence[AnyWorker]) -> dict[str, list[int]]:
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
        self, subs: list[SubSpec], senders: list[SendSpec], key: Callable[[int], int],
        *, target: str | None = None, seed: bool = False,
    ) -> tuple[list[AnyWorker], list[dict[str, Any]]]:
        """Start the worker processes; subscriber/sender i goes to worker key(i). `seed`:
        subscribers use StreamMessages (the seed proto's stream) instead of Subscribe."""
        n = self.opts.workers
        where = target or self.c.gateway
        workers: list[AnyWorker] = [
            NodeWorkerHandle(i, where) if self.opts.client == "node"
            else WorkerHandle(i, where, self.opts.uvloop)
            for i in range(n)
        ]
        sub_parts: list[list[SubSpec]] = [[] for _ in range(n)]
        send_parts: list[list[SendSpec]] = [[] for _ in range(n)]
        for i, s in enumerate(subs):
            sub_parts[key(i) % n].append(s)
        for i, t in enumerate(senders):
            send_parts[i % n].append(t)
        args = [{"subs": sub_parts[i], "senders": send_parts[i], "seed": seed}
                for i in range(n)]
        try:
            replies = await call_all(workers, "setup", args)
        except BaseException:
            await self.stop_workers(workers)
            raise
        return workers, replies

    async def stop_workers(self, workers: Sequence[AnyWorker]) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(call_all(workers, "stop", [None] * len(workers)), 30)
        for w in workers:
            w.close()

    async def step(
        self,
        name: str,
        workers: Sequence[AnyWorker],
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
            # Each worker sends every n/rate seconds, offset by its share of that: the sends
            # of all workers together are evenly spaced, not bunched at the same instants.
            args = [{"mode": "open", "rate": rate / n, "duration": duration, "phase": i / n}
                    for i in range(n)]
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

        ack, errors = merge_replies(sends, "errors")
        start_ms = min(s["start_ms"] for s in sends)
        last_ack = max((s["last_ack_ms"] for s in sends), default=0.0)
        acked = sum(s["acked"] for s in sends)
        send_window = max(duration, (last_ack - start_ms) / 1000.0) if acked else duration
        deliver, stream_errors = merge_replies(delivers, "stream_errors")
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
                                             duration=o.duration, profile=o.profile))
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

    async def scenario_seed(self) -> dict[str, Any]:
        """The seed's own path, as `make dev` runs it: one service process (pod0, no Envoy),
        every member on a StreamMessages stream, each message written to each stream alone."""
        o = self.opts
        size = o.seed_size
        group = self.users(size)
        (gid,) = await self.create_groups([group])
        heads_before = await self.heads([gid])
        subs: list[SubSpec] = [(uid, tok, {gid: heads_before[gid]}) for uid, tok in group]
        senders: list[SendSpec] = [(uid, tok, gid) for uid, tok in group[: o.fanout_senders]]
        t0 = time.monotonic()
        workers, setup = await self.start_workers(subs, senders, lambda i: i,
                                                  target=self.c.services[0].address, seed=True)
        print(f"seed: {sum(r['subscribed'] for r in setup)}/{size} StreamMessages streams on "
              f"pod0 in {time.monotonic() - t0:.1f}s", flush=True)
        steps: list[dict[str, Any]] = []
        try:
            await self.step("warmup", workers, [gid], {gid: size}, heads_before,
                            mode="open", rate=10, duration=min(2.0, o.duration))
            for rate in o.seed_rates:
                steps.append(await self.step(
                    f"seed StreamMessages, {size} members, {rate:g} msg/s", workers, [gid],
                    {gid: size}, heads_before, mode="open", rate=rate, duration=o.duration,
                    profile=o.profile,
                ))
        finally:
            await self.stop_workers(workers)
        return {"members": size, "subscribed": sum(r["subscribed"] for r in setup),
                "senders": len(senders), "setup": setup, "steps": steps}
