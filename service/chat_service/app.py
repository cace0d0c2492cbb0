"""Composition root: builds every part from Settings and runs the server's lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from chat_service.api.admin import AdminApi
from chat_service.api.admission import Admission
from chat_service.api.attachments import AttachmentApi
from chat_service.api.auth import Authenticator
from chat_service.api.backend import BackendApi, BackendCallers
from chat_service.api.calls import Callers, Draining
from chat_service.api.conversation import ConversationApi
from chat_service.api.gate import CallGate
from chat_service.api.handlers import SERVICE, generic_handler
from chat_service.api.server_options import server_options
from chat_service.api.server_settings import ServerSettings
from chat_service.api.servicer import ChatApi
from chat_service.api.streams import StreamApi, StreamSettings
from chat_service.attachments.service import AttachmentService, create_attachment_service
from chat_service.auth.backend import BackendVerifier
from chat_service.auth.bans import BanList
from chat_service.auth.jwt import TokenVerifier
from chat_service.backends import Backends, build_backends
from chat_service.config import Settings
from chat_service.domain.chat import ChatService
from chat_service.domain.direct import DirectMessages
from chat_service.domain.directory import Directory
from chat_service.domain.erasure import Erasure
from chat_service.domain.errors import Unavailable
from chat_service.domain.group_admin import GroupAdmin
from chat_service.domain.message_changes import MessageChanges
from chat_service.domain.moderation import Moderation
from chat_service.domain.pins import Pins
from chat_service.domain.receipts import Receipts
from chat_service.domain.search import Search
from chat_service.domain.threads import Threads
from chat_service.fanout.broker import Broker
from chat_service.fanout.hub import Hub
from chat_service.fanout.revocation import RevocationSink
from chat_service.gen import chat_backend_pb2, chat_pb2
from chat_service.storage.postgres.changes import PostgresMessageChanges
from chat_service.storage.postgres.migrate import migrate
from chat_service.storage.postgres.receipts import PostgresReceipts
from chat_service.storage.postgres.replica import ReadRoute
from chat_service.storage.postgres.repository import PostgresChatRepository, create_pool
from chat_service.storage.postgres.settings import DatabaseSettings
from chat_service.telemetry import heap, metrics, tracing

log = logging.getLogger(__name__)

TRIM_EVERY_SECONDS = 10
BACKEND_SERVICE = chat_backend_pb2.DESCRIPTOR.services_by_name["ChatBackend"]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def replica_reads(db: DatabaseSettings, primary: asyncpg.Pool) -> ReadRoute:
    """The read route: the primary alone, or with the replica DB_REPLICA_HOST names (its pool
    connects lazily: a replica that is down only sends reads to the primary)."""
    if not db.replica_host:
        return ReadRoute(primary)
    replica = await create_pool(db.replica_dsn, db.password, 0, db.replica_pool_max, timeout=2.0)
    return ReadRoute(primary, replica, max_wait=db.replica_max_wait_ms / 1000)


async def connect_pool(db: DatabaseSettings, attempts: int = 60) -> asyncpg.Pool:
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            return await create_pool(db.dsn, db.password, db.pool_min, db.pool_max)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if attempt == attempts:
                raise
            log.warning("PostgreSQL not reachable yet (%s); retrying", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


class App:
    """The server's lifecycle. `start` builds and starts every part, registering how to stop
    it on an exit stack; `stop` ends traffic gracefully, then unwinds that stack (parts stop
    in the reverse order of their start)."""

    def __init__(self, settings: Settings, span_processor: Any = None) -> None:
        self.settings = settings
        self._span_processor = span_processor
        self.port = 0
        self._health = health_aio.HealthServicer()
        self._parts = contextlib.AsyncExitStack()
        self._server: grpc.aio.Server | None = None
        self._server_started = False
        self._hub: Hub | None = None
        self._draining = Draining()  # read by every servicer; begun by stop()
        self._stopping = False

    async def start(self) -> int:
        s = self.settings
        parts = self._parts
        tracing.setup(s.telemetry.otel_service_name, s.server.pod_name, self._span_processor)
        bans = BanList(s.backend_jwt.ban_refresh_seconds)
        authenticator = Authenticator(TokenVerifier(s.jwt), bans)
        backend = BackendVerifier(s.backend_jwt)
        admission = Admission(
            s.admission.max_inflight_calls,
            s.admission.shed_loop_lag_ms / 1000,
            s.admission.max_queue_ms / 1000,
            max_per_user=s.admission.max_inflight_calls_per_user,
        )
        gate = CallGate(authenticator, admission, s.gate, backend)
        server = self._server = grpc.aio.server(
            interceptors=[gate], options=server_options(s.server)
        )
        # Bind first: a port already taken fails start-up before anything else is touched.
        self.port = await _bind(server, s.server)
        pool = await connect_pool(s.database)
        parts.push_async_callback(pool.close)
        if s.database.migrate_on_start:
            async with pool.acquire() as conn:
                await migrate(conn, s.database.text_search_config)
        # Storage (PostgreSQL), reading from a replica where one is configured.
        reads = await replica_reads(s.database, pool)
        if reads.replica is not None:
            parts.push_async_callback(reads.replica.close)
        repo = PostgresChatRepository(
            pool,
            batch_sends=s.database.batch_sends,
            text_search_config=s.database.text_search_config,
            reads=reads,
        )
        receipt_store = PostgresReceipts(pool)
        change_store = PostgresMessageChanges(pool)
        repo.start()
        parts.push_async_callback(repo.stop)
        await bans.start(repo.banned_users)
        parts.push_async_callback(bans.stop)
        hub = self._hub = Hub(
            repo.messages_after,
            repo.group_heads,
            sweep_interval=s.fanout.sweep_interval_seconds,
            typing_ttl=s.presence.typing_ttl_seconds,
            recent_per_group=s.fanout.recent_per_group,
            recent_total=s.fanout.recent_total,
            large_group=s.fanout.large_group_subscribers,
            large_group_flush=s.fanout.large_group_flush_ms / 1000,
            large_group_busy_rate=s.fanout.large_group_busy_rate,
        )
        b = build_backends(s, hub, groups_of=repo.group_ids_for_user, members_of=repo.member_ids)
        # Backend-wide bans and erasures reach this pod's ban list and streams at once.
        await b.broker.start(RevocationSink(hub, bans))
        parts.push_async_callback(b.broker.close)
        admission.start()
        parts.push_async_callback(admission.stop)
        hub.start()
        parts.push_async_callback(hub.stop)
        b.stream_slots.start()
        parts.push_async_callback(b.stream_slots.stop)
        b.presence.start()
        parts.push_async_callback(b.presence.stop)
        attachments = await create_attachment_service(pool, s.attachments, repo.role_of)
        attachments.start()
        parts.push_async_callback(attachments.stop)
        if b.notifier is not None:
            b.notifier.start()
            parts.push_async_callback(b.notifier.stop)
        server.add_generic_rpc_handlers(self._servicers(
            s, repo, receipt_store, change_store, hub, b, attachments, authenticator, backend,
            bans,
        ))
        _serve_health_and_reflection(server, self._health)
        await server.start()
        self._server_started = True
        await self._set_health(SERVING)
        # For liveness probes: SERVING while the process runs, whatever its dependencies.
        await self._health.set("liveness", SERVING)
        monitor = asyncio.create_task(self._watch_dependencies(repo, b.broker, pool), name="health")
        parts.push_async_callback(_cancel, monitor)
        if s.telemetry.metrics_port:
            metrics.initialise(
                [m.name for m in chat_pb2.DESCRIPTOR.services_by_name["ChatService"].methods]
                + [m.name for m in BACKEND_SERVICE.methods]
            )
            start_http_server(s.telemetry.metrics_port, addr=s.server.host)
        log.info(
            "serving chat.ChatService on %s:%s (broker=%s)", s.server.host, self.port, s.broker.kind
        )
        return self.port

    def _servicers(
        self,
        s: Settings,
        repo: PostgresChatRepository,
        receipt_store: PostgresReceipts,
        change_store: PostgresMessageChanges,
        hub: Hub,
        b: Backends,
        attachments: AttachmentService,
        authenticator: Authenticator,
        backend: BackendVerifier,
        bans: BanList,
    ) -> tuple[grpc.GenericRpcHandler, grpc.GenericRpcHandler]:
        """The domain's use cases and the servicers over them (construction only): those of
        chat.ChatService, then chat.ChatBackend's."""
        chat = ChatService(repo, b.fanout, b.presence, s.limits, b.rate, s.privacy)
        receipts = Receipts(receipt_store, repo, b.fanout, b.rate, s.privacy)
        changes = MessageChanges(
            repo, change_store, b.fanout, s.limits, attachments=attachments, rate=b.rate
        )
        callers = Callers(authenticator, chat.remember)
        draining = self._draining
        streams = StreamApi(
            chat,
            callers,
            hub,
            repo,
            StreamSettings(
                queue_max=s.fanout.subscriber_queue_max,
                batch_max=s.fanout.subscriber_batch_max,
                replay_max=s.limits.replay_max_messages,
                heartbeat_seconds=s.fanout.heartbeat_seconds,
                max_per_user=s.presence.max_streams_per_user,
            ),
            b.presence,
            draining,
            b.stream_slots,
        )
        conversation = ConversationApi(
            Threads(repo, b.fanout, s.limits, b.rate),
            Search(repo, repo, s.limits, b.rate),
            Pins(repo, b.fanout, s.limits, b.rate),
            receipts,
            callers,
            draining,
        )
        admin = GroupAdmin(repo, chat, b.fanout, s.limits, attachments, b.rate)
        moderation = Moderation(repo, b.fanout, b.rate)
        directory = Directory(repo, b.fanout)
        erasure = Erasure(repo, directory, b.fanout, attachments,
                          tombstone=s.erasure.erase_messages == "tombstone",
                          live_updates=s.erasure.live_updates)
        return generic_handler(
            ChatApi(chat, receipts, changes, callers, draining),
            conversation,
            streams,
            AttachmentApi(attachments, callers, draining),
            AdminApi(admin, DirectMessages(repo, b.fanout, b.rate, bans), moderation, callers,
                     draining),
        ), generic_handler(
            BackendApi(directory, admin, moderation, erasure, BackendCallers(backend), draining),
            proto=chat_backend_pb2.DESCRIPTOR,
            service="ChatBackend",
        )

    async def _set_health(self, status: Any) -> None:
        for name in ("", SERVICE):
            await self._health.set(name, status)

    async def _watch_dependencies(
        self, repo: PostgresChatRepository, broker: Broker, pool: asyncpg.Pool
    ) -> None:
        """Health is NOT_SERVING while PostgreSQL (the source of truth) is unreachable.
        Redis is reported separately under the service name 'redis': without it messages
        still flow, through the storage sweep, only slower."""
        db_ok = True
        ticks = 0
        while not self._stopping:
            try:
                await asyncio.wait_for(repo.ping(), timeout=2.0)
                ok = True
            except (Unavailable, TimeoutError, asyncpg.PostgresError):
                metrics.DB_ERRORS.inc()
                ok = False
            if ok != db_ok and not self._stopping:
                log.warning("PostgreSQL is %s", "reachable" if ok else "unreachable")
                await self._set_health(SERVING if ok else NOT_SERVING)
                db_ok = ok
            await self._health.set("redis", SERVING if broker.healthy else NOT_SERVING)
            metrics.DB_POOL_SIZE.set(pool.get_size())
            metrics.DB_POOL_IDLE.set(pool.get_idle_size())
            ticks += 1
            if ticks % TRIM_EVERY_SECONDS == 0:
                heap.release_free_memory()  # RSS back down after a burst (telemetry/heap.py)
            await asyncio.sleep(1.0)

    async def stop(self, grace: float | None = None) -> None:
        """Graceful: stop taking traffic, end streams with UNAVAILABLE so clients reconnect
        to another pod, let unary calls in flight finish, then close connections."""
        if self._stopping:
            return
        self._stopping = True
        grace = self.settings.server.shutdown_grace_seconds if grace is None else grace
        await self._health.enter_graceful_shutdown()
        self._draining.begin()
        if self._hub is not None:
            self._hub.close_all("server is shutting down")
        if self._server is not None and self._server_started:
            if grace > 0:
                # Calls that still arrive get UNAVAILABLE (retry elsewhere) while load
                # balancers notice the NOT_SERVING health; in-flight calls keep running.
                await asyncio.sleep(min(self.settings.server.shutdown_drain_seconds, grace / 2))
            await self._server.stop(grace)
        # The health monitor, then every part in the reverse order of its start.
        await self._parts.aclose()
        log.info("stopped")

    async def wait(self) -> None:
        assert self._server is not None
        await self._server.wait_for_termination()


async def _bind(server: grpc.aio.Server, s: ServerSettings) -> int:
    address = f"{s.host}:{s.port}"
    if s.tls_cert_file and s.tls_key_file:
        key = await asyncio.to_thread(Path(s.tls_key_file).read_bytes)
        cert = await asyncio.to_thread(Path(s.tls_cert_file).read_bytes)
        return server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
    return server.add_insecure_port(address)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def serve(settings: Settings) -> None:
    app = App(settings)
    try:
        await app.start()
    except BaseException:
        await app.stop(grace=0)
        raise
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down (grace %.0fs)", settings.server.shutdown_grace_seconds)
    await app.stop()


def _serve_health_and_reflection(server: grpc.aio.Server, health: Any) -> None:
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (
            chat_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name,
            BACKEND_SERVICE.full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
