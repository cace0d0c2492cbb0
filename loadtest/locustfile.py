"""Locust scenario: chat users over native gRPC (through Envoy or straight at a pod).

    pip install locust          # not a project dependency; `make bench` installs it too
    locust -f loadtest/locustfile.py --headless -u 50 -r 10 -t 30s --host 127.0.0.1:PORT

Each simulated user mints its own token, joins a group of LOCUST_GROUP_SIZE users (the first
user of each group creates it with the others as members), opens a Subscribe stream in a
greenlet and sends messages at LOCUST_SEND_RATE messages/s. What locust reports:

  grpc    /chat.ChatService/SendMessage, CreateGroup   unary calls, timed by a client interceptor
  deliver send->deliver                                 arrival time minus the message's
                                                        `timestamp_ms` (its commit time), for
                                                        every message a subscriber receives,
                                                        its own and the others'
  deliver order                                         a failure for each duplicate or gap in a
                                                        group's seq order (must stay at 0)

Environment: LOCUST_GROUP_SIZE [5], LOCUST_SEND_RATE [1.0 msg/s per user], JWT_SECRET [the dev
secret of chat_devstack], LOCUST_USER_ID_BASE [random]. Groups are formed inside one locust
process: run headless or with one process, not with --processes / distributed workers.
"""

from __future__ import annotations

# Order matters: importing locust monkey-patches the standard library for gevent; gRPC must be
# switched to gevent after that and before any channel exists.
from locust import (  # type: ignore[import-not-found,unused-ignore]
    User,
    constant_throughput,
    events,
    task,
)
from locust.env import Environment  # type: ignore[import-not-found,unused-ignore]

# isort: split
import grpc
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import contextlib  # noqa: E402
import itertools  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: E402
from gevent.event import (  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: E402
    AsyncResult,
    Event,
)

from chat_devstack.tokens import DEV_JWT_SECRET, mint  # noqa: E402
from chat_service.gen import chat_pb2 as pb  # noqa: E402
from chat_service.gen import chat_pb2_grpc as pb_grpc  # noqa: E402

GROUP_SIZE = int(os.environ.get("LOCUST_GROUP_SIZE", "5"))
SEND_RATE = float(os.environ.get("LOCUST_SEND_RATE", "1"))
SECRET = os.environ.get("JWT_SECRET") or DEV_JWT_SECRET
USER_ID_BASE = int(os.environ.get("LOCUST_USER_ID_BASE") or random.randint(1, 9_000) * 10**6)
USERS_PER_CHANNEL = 100  # grpc core cancels calls past ~1000 concurrent RPCs on one connection
CONTENT = "locust message: a typical short chat line of about sixty characters....."

# gRPC under gevent runs its blocking completion-queue waits in gevent's thread pool (10 threads
# by default): with one open stream per user, a small pool queues every call behind the
# streams and adds tens of milliseconds to every figure. Size it for the users.
gevent.get_hub().threadpool.maxsize = int(os.environ.get("LOCUST_GEVENT_THREADS", "1000"))

_slots = itertools.count()
_groups: dict[int, AsyncResult] = {}
_channels: dict[tuple[str, int], grpc.Channel] = {}


class LocustInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Fires a locust request event for every unary call: name, time, size, failure."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    def intercept_unary_unary(
        self,
        continuation: Callable[[Any, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        started = time.perf_counter()
        response = continuation(client_call_details, request)
        exception: BaseException | None = None
        length = 0
        try:
            length = response.result().ByteSize()
        except grpc.RpcError as exc:
            exception = exc
        self.environment.events.request.fire(  # type: ignore[no-untyped-call]
            request_type="grpc",
            name=client_call_details.method,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=length,
            exception=exception,
            context={},
        )
        return response


def _channel(environment: Environment, target: str, slot: int) -> grpc.Channel:
    key = (target, slot // USERS_PER_CHANNEL)
    channel = _channels.get(key)
    if channel is None:
        raw = grpc.insecure_channel(
            target, options=[("grpc.use_local_subchannel_pool", 1), ("locust.channel", key[1])]
        )
        channel = grpc.intercept_channel(raw, LocustInterceptor(environment))
        _channels[key] = channel
    return channel


class ChatUser(User):
    """A member of a group: subscribed to its events, sending at a fixed rate."""

    wait_time = constant_throughput(SEND_RATE)

    def on_start(self) -> None:
        target = (self.host or "127.0.0.1:8080").removeprefix("http://")
        self.slot = next(_slots)
        self.user_id = USER_ID_BASE + self.slot
        token = mint(SECRET, self.user_id, name=f"locust{self.slot}")
        self.md = (("authorization", f"Bearer {token}"),)
        self.stub: Any = pb_grpc.ChatServiceStub(_channel(self.environment, target, self.slot))
        self.group_id = self._join_group()
        self.last_seq: dict[int, int] = {}
        self.subscribed = Event()
        self.call: Any = None
        self.listener = gevent.spawn(self._listen)
        if not self.subscribed.wait(timeout=30):
            raise RuntimeError(f"user {self.user_id}: Subscribe did not confirm within 30 s")

    def _join_group(self) -> int:
        index, position = divmod(self.slot, GROUP_SIZE)
        result = _groups.setdefault(index, AsyncResult())
        if position == 0:
            first = USER_ID_BASE + index * GROUP_SIZE
            others = [first + k for k in range(1, GROUP_SIZE)]
            try:
                group = self.stub.CreateGroup(
                    pb.CreateGroupRequest(name=f"locust {index}", member_ids=others),
                    metadata=self.md,
                    timeout=30,
                )
            except grpc.RpcError as exc:
                result.set_exception(exc)
                raise
            result.set(group.id)
        group_id: int = result.get(timeout=60)
        return group_id

    def _listen(self) -> None:
        fire = self.environment.events.request.fire
        while True:
            positions = [pb.GroupPosition(group_id=g, last_seq=s) for g, s in self.last_seq.items()]
            self.call = self.stub.Subscribe(
                pb.SubscribeRequest(positions=positions), metadata=self.md
            )
            try:
                self.call.initial_metadata()  # chat-subscribed: 1, nothing is missed from here
                self.subscribed.set()
                for response in self.call:
                    now = time.time() * 1000.0
                    for event in response.events:
                        if event.WhichOneof("event") == "message":
                            self._on_message(event.message, now, fire)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.CANCELLED:
                    return  # on_stop
                fire(request_type="deliver", name="Subscribe stream", response_time=0,
                     response_length=0, exception=exc, context={})
                gevent.sleep(0.5)  # then resume from the last seq of each group

    def _on_message(self, m: Any, now_ms: float, fire: Callable[..., None]) -> None:
        prev = self.last_seq.get(m.group_id)
        if prev is not None and m.seq != prev + 1:
            problem = "duplicate" if m.seq <= prev else f"gap of {m.seq - prev - 1}"
            fire(request_type="deliver", name="deliver order", response_time=0,
                 response_length=0, exception=RuntimeError(problem), context={})
            if m.seq <= prev:
                return
        self.last_seq[m.group_id] = m.seq
        fire(request_type="deliver", name="send->deliver",
             response_time=max(0.0, now_ms - m.timestamp_ms), response_length=m.ByteSize(),
             exception=None, context={})

    @task
    def send_message(self) -> None:
        request = pb.SendMessageRequest(
            group_id=self.group_id, content=CONTENT, client_msg_id=uuid.uuid4().hex
        )
        with contextlib.suppress(grpc.RpcError):  # failures are recorded by the interceptor
            self.stub.SendMessage(request, metadata=self.md, timeout=10)

    def on_stop(self) -> None:
        if self.call is not None:
            self.call.cancel()
        self.listener.kill(block=False)


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _close_channels(environment: Environment, **_: Any) -> None:
    for channel in _channels.values():
        channel.close()
