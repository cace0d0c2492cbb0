"""The servicer side of the call gate (api/calls.py) and the handler table (api/handlers.py),
without a server: a fake servicer context records what a call would answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import grpc
import pytest

from chat_service.api.calls import Draining, streaming, unary
from chat_service.api.errors import status_of
from chat_service.api.handlers import PRE_ENCODED, generic_handler
from chat_service.domain.errors import ResourceExhausted
from chat_service.fanout.session import RESUME_HINT, SessionClosed, SubscriberLagged
from chat_service.gen import chat_pb2 as pb
from chat_service.telemetry import metrics


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self) -> None:
        self.status: tuple[grpc.StatusCode, str] | None = None
        self.trailers: tuple[Any, ...] = ()

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.status = (code, details)
        raise Aborted(details)

    def set_trailing_metadata(self, trailers: tuple[Any, ...]) -> None:
        self.trailers = trailers

    def code(self) -> grpc.StatusCode | None:
        return self.status[0] if self.status else None


def new_context() -> Any:
    return FakeContext()


class Servicer:
    def __init__(self, draining: Draining, fail: Exception | None = None) -> None:
        self.draining = draining
        self.fail = fail

    @unary
    async def GetGroup(self, request: Any, context: Any) -> str:
        if self.fail:
            raise self.fail
        return "answer"

    @streaming(live=True)
    async def Subscribe(self, request: Any, context: Any) -> AsyncGenerator[bytes, None]:
        yield b"first"
        if self.fail:
            raise self.fail

    @streaming(live=False)
    async def DownloadFile(self, request: Any, context: Any) -> AsyncGenerator[bytes, None]:
        yield b"chunk"
        if self.fail:
            raise self.fail


def counted(method: str, code: str) -> float:
    return float(metrics.RPC_REQUESTS.labels(method, code)._value.get())


def dropped(reason: str) -> float:
    return float(metrics.SUBSCRIBERS_DROPPED.labels(reason)._value.get())


async def drain(stream: AsyncGenerator[bytes, None]) -> list[bytes]:
    return [item async for item in stream]


def test_one_draining_flag_refuses_new_calls_of_every_servicer() -> None:
    draining = Draining()
    chat, files = Servicer(draining), Servicer(draining)
    assert asyncio.run(chat.GetGroup(None, new_context())) == "answer"
    draining.begin()
    for servicer in (chat, files):
        context = new_context()
        with pytest.raises(Aborted):
            asyncio.run(servicer.GetGroup(None, context))
        assert context.status == (
            grpc.StatusCode.UNAVAILABLE,
            "server is shutting down; retry (another pod will answer)",
        )
    live = new_context()
    with pytest.raises(Aborted):
        asyncio.run(drain(chat.Subscribe(None, live)))
    assert live.status == (
        grpc.StatusCode.UNAVAILABLE, "server is shutting down; reconnect to another pod"
    )
    download = new_context()
    with pytest.raises(Aborted):
        asyncio.run(drain(files.DownloadFile(None, download)))
    assert download.status == (
        grpc.StatusCode.UNAVAILABLE, "server is shutting down; retry (another pod will answer)"
    )


def test_a_unary_refusal_carries_retry_after_and_streams_do_not() -> None:
    limit = ResourceExhausted("slow down", retry_after=1.5)
    context = new_context()
    with pytest.raises(Aborted):
        asyncio.run(Servicer(Draining(), limit).GetGroup(None, context))
    assert context.status == (grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
    assert context.trailers == (("retry-after-ms", "1500"),)
    stream = new_context()
    with pytest.raises(Aborted):
        asyncio.run(drain(Servicer(Draining(), limit).DownloadFile(None, stream)))
    assert stream.status == (grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
    assert stream.trailers == ()


@pytest.mark.parametrize(
    ("exc", "reason", "text"),
    [
        (SubscriberLagged(), "lagged", f"subscriber fell too far behind; {RESUME_HINT}"),
        (SessionClosed("server is shutting down"), "closed",
         f"server is shutting down; {RESUME_HINT}"),
    ],
)
def test_a_dropped_subscriber_maps_through_the_one_table(
    exc: Exception, reason: str, text: str
) -> None:
    assert status_of(exc) == grpc.StatusCode.UNAVAILABLE  # type: ignore[arg-type]
    before, failed = dropped(reason), counted("Subscribe", "UNAVAILABLE")
    context = new_context()
    with pytest.raises(Aborted):
        asyncio.run(drain(Servicer(Draining(), exc).Subscribe(None, context)))
    assert context.status == (grpc.StatusCode.UNAVAILABLE, text)
    assert dropped(reason) == before + 1
    assert counted("Subscribe", "UNAVAILABLE") == failed + 1


def test_a_live_stream_is_counted_only_when_it_fails_and_a_download_always() -> None:
    ok_live, ok_download = counted("Subscribe", "OK"), counted("DownloadFile", "OK")
    assert asyncio.run(drain(Servicer(Draining()).Subscribe(None, new_context()))) == [b"first"]
    assert asyncio.run(drain(Servicer(Draining()).DownloadFile(None, new_context()))) == [b"chunk"]
    assert counted("Subscribe", "OK") == ok_live
    assert counted("DownloadFile", "OK") == ok_download + 1


def test_an_unexpected_error_is_hidden_as_internal() -> None:
    context = new_context()
    with pytest.raises(Aborted):
        asyncio.run(drain(Servicer(Draining(), KeyError("x")).Subscribe(None, context)))
    assert context.status == (grpc.StatusCode.INTERNAL, "internal error; it has been logged")


class Everything:
    """A servicer with a method for every RPC of chat.proto."""

    def __getattr__(self, name: str) -> Any:
        if name[:1].isupper():
            return lambda *args: None
        raise AttributeError(name)


class Call:  # the grpc.HandlerCallDetails of a call to `name`
    def __init__(self, name: str) -> None:
        self.method = f"/chat.ChatService/{name}"
        self.invocation_metadata = ()


def handler_table(*servicers: object) -> dict[str, Any]:
    """Each declared RPC's handler as the server finds it (None when it finds none)."""
    generic = generic_handler(*servicers)
    service = pb.DESCRIPTOR.services_by_name["ChatService"]
    return {m.name: generic.service(Call(m.name)) for m in service.methods}  # type: ignore[arg-type]


def test_handlers_follow_the_descriptors() -> None:
    table = handler_table(Everything())
    service = pb.DESCRIPTOR.services_by_name["ChatService"]
    assert None not in table.values()
    for m in service.methods:
        handler = table[m.name]
        assert handler.request_streaming == m.client_streaming, m.name
        assert handler.response_streaming == m.server_streaming, m.name
        request = getattr(pb, m.input_type.name)()
        assert isinstance(handler.request_deserializer(request.SerializeToString()),
                          type(request))
    send = table["SendMessage"]
    assert send.response_serializer(pb.MessageResponse(id=7)) == pb.MessageResponse(
        id=7).SerializeToString()
    assert {"Subscribe", "StreamMessages"} == PRE_ENCODED
    for name in PRE_ENCODED:  # already framed by the fan-out: passed through as they are
        assert table[name].response_serializer(b"\x0a\x00") == b"\x0a\x00"


def test_an_rpc_declared_without_a_handler_stops_the_server() -> None:
    class Partial:
        async def CreateGroup(self, request: Any, context: Any) -> None: ...

    with pytest.raises(RuntimeError, match=r"declared in chat.proto without a handler:.*JoinGroup"):
        generic_handler(Partial())
