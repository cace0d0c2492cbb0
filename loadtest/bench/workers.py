"""Load-generator worker process: subscribers and senders on grpc.aio, driven over a Pipe."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc

from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc
from loadtest.bench.constants import (
    CHANNEL_OPTIONS,
    CONTENT,
    MAX_INFLIGHT,
    SEND_CHANNELS,
    SEND_TIMEOUT,
    SUBS_PER_CHANNEL,
    SendSpec,
    SubSpec,
)
from loadtest.bench.histograms import Hist, bucket


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
        receive = self._stream_messages if arg.get("seed") else self._subscribe
        self.send_stubs = [pb_grpc.ChatServiceStub(self._channel()) for _ in range(SEND_CHANNELS)]
        self.senders = [((("authorization", f"Bearer {tok}"),), gid) for _, tok, gid in senders]
        stub: Any = None
        opening = asyncio.Semaphore(50)
        for i, (uid, token, heads) in enumerate(subs):
            if i % SUBS_PER_CHANNEL == 0:
                stub = pb_grpc.ChatServiceStub(self._channel())
            sub = Sub(uid, token, heads)
            self.subs.append(sub)
            self.sub_tasks.append(asyncio.create_task(receive(sub, stub, opening)))
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

    async def _stream_messages(self, sub: Sub, stub: Any, opening: asyncio.Semaphore) -> None:
        """A client of the seed's proto: one StreamMessages call, each message its own write,
        live from when it opens (no resume). It authenticates with metadata instead of
        posting a first message, so the setup does not post one message per member; what
        is measured, the delivery path, is the seed's."""
        while not self.stopping:
            call = stub.StreamMessages(metadata=sub.md)
            try:
                async with opening:
                    await call.initial_metadata()
                sub.ready.set()
                while True:
                    m = await call.read()
                    if m is grpc.aio.EOF:
                        break
                    self._on_messages(sub, (m,))
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
            self.dstats.reconnects += 1  # what was missed meanwhile counts as missing
            await asyncio.sleep(0.2)

    def _on_batch(self, sub: Sub, resp: Any) -> None:
        self._on_messages(sub, [ev.message for ev in resp.events
                                if ev.WhichOneof("event") == "message"])

    def _on_messages(self, sub: Sub, messages: Sequence[Any]) -> None:
        now = time.time() * 1000.0
        st = self.dstats
        last = sub.last
        counts = st.latency.counts
        n = 0
        for m in messages:
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
            await self._open_loop(float(arg["rate"]), duration, float(arg.get("phase", 0.0)))
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

    async def _open_loop(self, rate: float, duration: float, phase: float = 0.0) -> None:
        """`rate` sends a second for `duration`, the first `phase` of an interval late."""
        loop = asyncio.get_running_loop()
        total = int(rate * duration)
        interval = 1.0 / rate
        senders = self.senders
        start = loop.time() + phase * interval
        await asyncio.sleep(phase * interval)
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


class NodeWorkerHandle:
    """The same worker in Node (`node_worker.mjs`, `--client node`): a lighter load generator
    for the steps where the Python one's ~35 us of CPU per delivery sets the figure."""

    SCRIPT = Path(__file__).with_name("node_worker.mjs")

    def __init__(self, index: int, target: str) -> None:
        node = os.environ.get("NODE") or shutil.which("node")
        if node is None:
            raise RuntimeError("--client node needs Node.js on PATH (or NODE=/path/to/node)")
        self.proc = subprocess.Popen(
            [node, str(self.SCRIPT), target, str(index)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def _exchange(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline()

    async def call(self, cmd: str, arg: Any = None) -> Any:
        answer = await asyncio.to_thread(self._exchange, json.dumps([cmd, arg]))
        if not answer:
            raise RuntimeError(f"node worker {self.proc.pid} exited during {cmd}")
        status, reply = json.loads(answer)
        if status != "ok":
            raise RuntimeError(f"node worker {self.proc.pid} failed {cmd}: {reply}")
        return reply

    def close(self) -> None:
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


AnyWorker = WorkerHandle | NodeWorkerHandle


async def call_all(workers: Sequence[AnyWorker], cmd: str, args: Sequence[Any]) -> list[Any]:
    return list(await asyncio.gather(*(w.call(cmd, a) for w, a in zip(workers, args, strict=True))))
