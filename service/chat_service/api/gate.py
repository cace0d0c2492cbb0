"""The call gate: every RPC passes here, on its headers alone, before anything waits for it.

grpc.aio reads a unary call's request message before it runs the handler, and waits for it
as long as the client keeps the connection alive: a client that sends headers and never a body
parks a call (~20 KiB) that no handler ever sees, for free and without a token. So the gate is
a server interceptor that decides on the headers, and serves every method through a
request-streaming handler where the gate, not grpc, waits for the request, with a deadline:

1. `authorization: Bearer <jwt>` in metadata: verified at once (cached). A bad token is
   answered UNAUTHENTICATED before the request is read. A good one is admitted (per-pod and
   per-user caps, event-loop lag: `Admission`) and its request must arrive within
   `body_timeout` (DEADLINE_EXCEEDED otherwise: not retried by Envoy, unlike UNAVAILABLE).
2. No token in metadata (clients generated from the original proto carry `jwt_token` in the
   request): the call takes a slot of a small budget of its own (`preauth_max`), or is
   refused at once when those are taken; its first request message must arrive within
   `preauth_timeout`; the token in it is verified before admission. Token-less callers
   therefore never hold anything that authenticated traffic needs.
3. Methods anyone may call (health checks, reflection): like 2, without a token and without
   admission.
4. chat.ChatBackend (the app's backend, issue 15): a backend token in metadata is required
   (auth/backend.py; user tokens and request-field tokens are refused at once); admitted as
   user 0, so the backend's calls in flight are capped like one user's.

Unary-response methods hold their admission until they answer. Streams (Subscribe,
StreamMessages, DownloadFile) hold it only until their request is read: an open stream costs
memory, not CPU, and has its own per-user cap. A client-streaming upload must keep sending:
each chunk within `body_timeout` of the last. StreamMessages may stay silent after its first
message (its client speaks when its user types).

The handlers' side of the gate (draining, the status of what a handler raises, RPC metrics)
is api/calls.py, whose `refusal` also answers the calls refused here.

The wire is unchanged: a unary request is one message and end-of-stream, whichever handler
shape reads it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from grpc.aio import EOF

from chat_service.api.admission import Admission, queued_for
from chat_service.api.auth import Authenticator, bearer_from_metadata
from chat_service.api.calls import refusal
from chat_service.api.gate_settings import GateSettings
from chat_service.auth.backend import BackendVerifier
from chat_service.domain.errors import (
    ChatError,
    InvalidArgument,
    ResourceExhausted,
    TooSlow,
    Unauthenticated,
)
from chat_service.telemetry import metrics

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]

CHAT_PREFIX = "/chat.ChatService/"
BACKEND_PREFIX = "/chat.ChatBackend/"
BACKEND_ADMISSION_ID = 0  # the backend's calls share one per-user admission budget
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# Request streams that may stay silent between messages (the client speaks when its user
# types); every other request stream must keep sending.
QUIET_REQUEST_STREAMS = frozenset({CHAT_PREFIX + "StreamMessages"})


PREAUTH_FULL = (
    "too many calls waiting to authenticate on this server; send 'authorization: Bearer "
    "<jwt>' metadata, or retry shortly"
)


class CallGate(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        auth: Authenticator,
        admission: Admission,
        settings: GateSettings,
        backend: BackendVerifier | None = None,
    ):
        self._auth = auth
        self._backend = backend
        self._admission = admission
        self._settings = settings
        self.preauth = 0  # calls waiting for their first message without a verified token
        self._refusals: dict[tuple[str, str], Handler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or not method.startswith(
            (CHAT_PREFIX, BACKEND_PREFIX, *PUBLIC_PREFIXES)
        ):
            return handler
        metadata = tuple(details.invocation_metadata or ())
        name = method.rsplit("/", 1)[-1]
        public = not method.startswith((CHAT_PREFIX, BACKEND_PREFIX))
        try:
            user_id: int | None = None
            if method.startswith(BACKEND_PREFIX):
                if self._backend is None:
                    raise Unauthenticated("the backend API is not served here")
                self._backend.verify(bearer_from_metadata(metadata))
                user_id = BACKEND_ADMISSION_ID
            elif not public and bearer_from_metadata(metadata):
                user_id = self._auth.caller(metadata).id
            else:
                self._take_preauth_slot()
        except ChatError as exc:
            # Floods are refused here, many thousands a second: one handler per (method,
            # message), made once, so a refusal allocates next to nothing.
            key = (name, str(exc))
            refusal = self._refusals.get(key)
            if refusal is None:
                if len(self._refusals) > 1000:
                    self._refusals.clear()
                refusal = self._refusals[key] = _refusal(name, exc)
            return refusal
        return _request_streaming(handler, self._behaviour(
            handler, method, name, user_id, public, queued_for(metadata)
        ))

    def _take_preauth_slot(self) -> None:
        if self.preauth >= self._settings.preauth_max:
            metrics.CALLS_SHED.labels("preauth").inc()
            raise ResourceExhausted(PREAUTH_FULL, retry_after=1.0)
        self.preauth += 1

    def _behaviour(
        self,
        handler: Handler,
        method: str,
        name: str,
        user_id: int | None,
        public: bool,
        queued: float | None,
    ) -> Callable[[Ctx], Awaitable[Any]]:
        settings = self._settings
        admission = self._admission
        streaming_request = handler.request_streaming
        streaming_response = handler.response_streaming
        quiet = method in QUIET_REQUEST_STREAMS
        # The method's own behaviour, whichever of the four shapes it has (async here).
        inner: Any = (handler.unary_unary or handler.unary_stream or handler.stream_unary
                      or handler.stream_stream)

        async def behaviour(context: Ctx) -> Any:
            first: Any = None
            uid = user_id
            if uid is None:  # no verified token yet: the pre-auth slot taken above
                try:
                    first = await _first(context, settings.preauth_timeout,
                                         carries_token=not public)
                finally:
                    self.preauth -= 1
                if not public:
                    uid = self._auth.caller(None, getattr(first, "jwt_token", "")).id
            if uid is not None:
                admission.admit(queued, uid)
            held = uid
            try:
                if not streaming_request:
                    if first is None:
                        first = await _first(context, settings.body_timeout)
                    if not streaming_response:
                        return await inner(first, context)
                    responses = inner(first, context)
                else:
                    messages = _Messages(
                        context, first, None if quiet else settings.body_timeout
                    )
                    if not streaming_response:
                        return await inner(messages, context)
                    responses = inner(messages, context)
                # A stream: admitted until here only; its own caps apply from now on.
                if held is not None:
                    admission.release(held)
                    held = None
                return responses
            finally:
                if held is not None:
                    admission.release(held)

        async def guarded(context: Ctx) -> Any:
            try:
                return await behaviour(context)
            except ChatError as exc:  # refused by the gate, before the handler's own mapping
                await _abort(context, name, exc)

        return guarded


async def _first(context: Ctx, timeout: float, *, carries_token: bool = False) -> Any:
    """The call's first request message, or the error that says why there is none
    (`carries_token`: the caller has no other credential than the token in it)."""
    try:
        async with asyncio.timeout(timeout):
            message = await context.read()
    except TimeoutError:
        metrics.CALLS_SHED.labels("no_request").inc()
        if carries_token:
            raise Unauthenticated(
                f"no credentials within {timeout:g} s: send 'authorization: Bearer <jwt>' "
                "metadata, or the first request (carrying jwt_token) with the call"
            ) from None
        raise TooSlow(
            f"the request did not arrive within {timeout:g} s of the call's headers"
        ) from None
    if message is EOF:
        raise InvalidArgument("the call carried no request message")
    return message


class _Messages:
    """The request stream as the handler sees it: `first` (when the gate read it) and what
    follows, each message within `timeout` of the previous one when a timeout is set."""

    def __init__(self, context: Ctx, first: Any, timeout: float | None) -> None:
        self._context = context
        self._first = first
        self._timeout = timeout

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> Any:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self._timeout is None:
            message = await self._context.read()
        else:
            try:
                async with asyncio.timeout(self._timeout):
                    message = await self._context.read()
            except TimeoutError:
                metrics.CALLS_SHED.labels("no_request").inc()
                raise TooSlow(
                    f"no request message for {self._timeout:g} s on this stream; start "
                    "again (an upload resumes where GetUpload says it stopped)"
                ) from None
        if message is EOF:
            raise StopAsyncIteration
        return message


async def _abort(context: Ctx, name: str, exc: ChatError) -> None:
    code = refusal(context, exc, trailer=True)
    metrics.RPC_REQUESTS.labels(name, code.name).inc()
    await context.abort(code, str(exc))


def _request_streaming(
    handler: Handler, behaviour: Callable[[Ctx], Awaitable[Any]]
) -> Handler:
    """`handler`'s method served by a request-streaming handler that runs `behaviour`, which
    reads the request itself; for a server-streaming method it returns the response stream."""
    if handler.response_streaming:

        async def streams(_requests: Any, context: Ctx) -> AsyncIterator[Any]:
            responses = await behaviour(context)
            if responses is not None:
                async for response in responses:
                    yield response

        return grpc.stream_stream_rpc_method_handler(
            streams,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def unary(_requests: Any, context: Ctx) -> Any:
        return await behaviour(context)

    return grpc.stream_unary_rpc_method_handler(
        unary,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _refusal(name: str, exc: ChatError) -> Handler:
    """A handler that answers `exc`'s status without reading the request."""

    async def refuse(_requests: Any, context: Ctx) -> None:
        await _abort(context, name, exc)

    return grpc.stream_unary_rpc_method_handler(refuse)
