"""Traces: gRPC server spans, and a fan-out delivery linked to its send through Redis."""

from __future__ import annotations

import asyncio

import grpc
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chat_devstack.cluster import Cluster
from chat_devstack.ports import free_port
from chat_devstack.tokens import mint
from chat_service.app import App
from chat_service.config import load_settings
from tests.support.chat_client import ChatClient


async def test_delivery_span_links_to_the_send_span(stack: Cluster) -> None:
    exporter = InMemorySpanExporter()
    env = {**stack.env, "GRPC_PORT": str(free_port()), "METRICS_PORT": "0",
           "POD_NAME": "traced"}
    app = App(load_settings(env), span_processor=SimpleSpanProcessor(exporter))
    port = await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            alice = ChatClient(channel, mint(stack.jwt_secret, 4242, name="T"), 4242)
            group = await alice.create_group()
            stream = await alice.subscribe()
            await alice.send(group.id, "traced message")
            await stream.wait_messages(1, group.id)
            await stream.close()
        for _ in range(50):
            spans = exporter.get_finished_spans()
            if any(s.name == "chat.fanout.receive" for s in spans):
                break
            await asyncio.sleep(0.05)
    finally:
        await app.stop(grace=0)
    spans = exporter.get_finished_spans()
    send = [s for s in spans if s.name == "/chat.ChatService/SendMessage"]
    assert send, sorted({s.name for s in spans})
    send_trace = send[0].context.trace_id
    receives = [s for s in spans if s.name == "chat.fanout.receive"]
    assert any(link.context.trace_id == send_trace for r in receives for link in r.links)
    assert send[0].resource.attributes["service.instance.id"] == "traced"
