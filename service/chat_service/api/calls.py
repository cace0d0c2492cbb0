"""The servicer side of the call gate: what every handler method wears.

api/gate.py decides on a call's headers (authentication before anything is held, admission);
this module runs around the handler itself, the same way for every servicer:

- `Callers`: who is calling (the verified token's user, remembered for member lists);
- `Draining`: one flag per server, set on SIGTERM; new calls get UNAVAILABLE;
- `@unary` and `@streaming`: draining, domain errors mapped through the one status table
  (api/errors.py; a dropped subscriber is an `Unavailable` like any other), internal errors
  hidden and logged, `chat_rpc_requests_total` / `chat_rpc_duration_seconds` recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

import grpc

from chat_service.api.auth import Authenticator
from chat_service.api.errors import status_of
from chat_service.domain.errors import ChatError, Unavailable
from chat_service.domain.models import UserProfile
from chat_service.fanout.session import SubscriberDropped
from chat_service.telemetry import metrics

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Ctx = grpc.aio.ServicerContext[Any, Any]

DRAINING_RETRY = "server is shutting down; retry (another pod will answer)"
DRAINING_RECONNECT = "server is shutting down; reconnect to another pod"


class Draining:
    """Set once, on SIGTERM: new calls get UNAVAILABLE, calls in flight finish. The App owns
    one and every servicer reads it."""

    def __init__(self) -> None:
        self.active = False

    def begin(self) -> None:
        self.active = True


class Callers:
    """The caller of a call: the user its token names (metadata wins over the request field,
    see api/auth.py), whose display data is remembered for member lists (cached)."""

    def __init__(
        self, auth: Authenticator, remember: Callable[[UserProfile], Awaitable[None]]
    ) -> None:
        self._auth = auth
        self._remember = remember

    async def __call__(self, context: Ctx, field_token: str) -> UserProfile:
        user = self._auth.caller(context.invocation_metadata(), field_token)
        await self._remember(user)
        return user

    def of_token(self, token: str) -> UserProfile:
        """The user a request-field token names (no metadata, nothing remembered)."""
        return self._auth.caller(None, token)


def refusal(context: Ctx, exc: ChatError, *, trailer: bool) -> grpc.StatusCode:
    """The status that answers `exc` (the one table, api/errors.py). Counts a dropped
    subscriber; with `trailer`, tells when to retry (`retry-after-ms`) if `exc` knows."""
    if isinstance(exc, SubscriberDropped):
        metrics.SUBSCRIBERS_DROPPED.labels(exc.dropped).inc()
    retry = getattr(exc, "retry_after", None)
    if trailer and retry is not None:
        context.set_trailing_metadata((("retry-after-ms", str(int(retry * 1000))),))
    return status_of(exc)


class _Outcome:
    """Maps how a handler ended to its status and records it. `live`: a stream that runs
    until its client leaves, counted only when it fails and never timed (its length is the
    client's); otherwise every end is counted and timed. Only unary answers carry the
    `retry-after-ms` trailer."""

    def __init__(self, method: str, context: Ctx, *, live: bool, trailer: bool) -> None:
        self._method = method
        self._context = context
        self._live = live
        self._trailer = trailer
        self._started = time.perf_counter()
        self._code = grpc.StatusCode.OK

    async def __aenter__(self) -> _Outcome:
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> bool:
        context = self._context
        failed = False
        try:
            if isinstance(exc, ChatError):
                failed = True
                self._code = refusal(context, exc, trailer=self._trailer)
                await context.abort(self._code, str(exc))
            elif isinstance(exc, asyncio.CancelledError):
                self._code = grpc.StatusCode.CANCELLED
            elif isinstance(exc, grpc.aio.AbortError):
                self._code = context.code() or grpc.StatusCode.UNKNOWN
            elif isinstance(exc, Exception):
                failed = True
                self._code = grpc.StatusCode.INTERNAL
                log.error("unhandled error in %s", self._method, exc_info=exc)
                await context.abort(self._code, "internal error; it has been logged")
        finally:
            if not self._live:
                metrics.RPC_REQUESTS.labels(self._method, self._code.name).inc()
                metrics.RPC_DURATION.labels(self._method).observe(
                    time.perf_counter() - self._started
                )
            elif failed:
                metrics.RPC_REQUESTS.labels(self._method, self._code.name).inc()
        return False


def unary(
    fn: Callable[[Any, Req, Ctx], Coroutine[Any, Any, Resp]],
) -> Callable[[Any, Req, Ctx], Coroutine[Any, Any, Resp]]:
    """A method with one answer (its request may be a stream: it is passed through)."""
    method = fn.__name__

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Req, context: Ctx) -> Resp:
        async with _Outcome(method, context, live=False, trailer=True):
            if self.draining.active:
                raise Unavailable(DRAINING_RETRY)
            return await fn(self, request, context)
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


StreamMethod = Callable[[Any, Req, Ctx], AsyncGenerator[Resp, None]]


def streaming(*, live: bool) -> Callable[[StreamMethod[Req, Resp]], StreamMethod[Req, Resp]]:
    """A method that answers with a stream. `live`: it runs until the client leaves
    (Subscribe, StreamMessages); otherwise it ends by itself (DownloadFile)."""

    def decorate(fn: StreamMethod[Req, Resp]) -> StreamMethod[Req, Resp]:
        method = fn.__name__
        refusal = DRAINING_RECONNECT if live else DRAINING_RETRY

        @functools.wraps(fn)
        async def wrapper(self: Any, request: Req, context: Ctx) -> AsyncGenerator[Resp, None]:
            async with _Outcome(method, context, live=live, trailer=False):
                if self.draining.active:
                    raise Unavailable(refusal)
                async with contextlib.aclosing(fn(self, request, context)) as responses:
                    async for response in responses:
                        yield response

        return wrapper

    return decorate
