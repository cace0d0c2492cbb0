"""BROKER=memory (one process, no Redis) serves and stops: the composition root's other
choice, which the rest of the suite, always on Redis, never starts."""

from __future__ import annotations

import grpc

from chat_devstack.cluster import Cluster
from chat_devstack.ports import free_port
from chat_devstack.tokens import mint
from chat_service.app import App
from chat_service.config import load_settings
from tests.support.chat_client import ChatClient


async def test_a_message_is_delivered_with_the_memory_broker(stack: Cluster) -> None:
    env = {**stack.env, "GRPC_PORT": str(free_port()), "METRICS_PORT": "0",
           "BROKER": "memory", "REDIS_PORT": "1"}  # Redis, if reached for, is not there
    app = App(load_settings(env))
    port = await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            alice = ChatClient(channel, mint(stack.jwt_secret, 4343, name="M"), 4343)
            group = await alice.create_group()
            stream = await alice.subscribe()
            await alice.send(group.id, "no redis here")
            await stream.wait_messages(1, group.id)
            await stream.close()
    finally:
        await app.stop(grace=0)
