"""gRPC handlers: proto in, domain call, proto out. No business rules live here."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from chat_service.api.auth import Authenticator, bearer_from_metadata
from chat_service.api.errors import status_of
from chat_service.domain.chat import ChatService
from chat_service.domain.errors import (
    ChatError,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
)
from chat_service.domain.message_changes import MessageChanges
from chat_service.domain.models import Role, UserProfile
from chat_service.domain.ports import PresenceTracker
from chat_service.domain.receipts import Receipts
from chat_service.fanout.delivery import Delivery
from chat_service.fanout.hub import Hub
from chat_service.fanout.session import Session, SessionClosed, SessionStore, SubscriberLagged
from chat_service.gen import chat_pb2 as pb
from chat_service.presence.stream_slots import LocalStreamSlots, StreamSlot, StreamSlots
from chat_service.telemetry import metrics
from chat_service.wire import convert

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Ctx = grpc.aio.ServicerContext[Any, Any]

RESUME_HINT = "resume with Subscribe(positions=your last seq per group)"


@dataclass(frozen=True)
class StreamSettings:
    queue_max: int
    batch_max: int
    replay_max: int
    heartbeat_seconds: float
    max_per_user: int = 20


def unary(
    fn: Callable[[Any, Req, Ctx], Awaitable[Resp]],
) -> Callable[[Any, Req, Ctx], Awaitable[Resp]]:
    """Map domain errors to statuses, hide internal errors, record metrics. (Authentication
    before anything is held, and admission, happen earlier, in the call gate: api/gate.py.)"""
    method = fn.__name__

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Req, context: Ctx) -> Resp:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            if self.draining:
                raise Unavailable("server is shutting down; retry (another pod will answer)")
            return await fn(self, request, context)
        except ChatError as exc:
            code = status_of(exc)
            retry = getattr(exc, "retry_after", None)
            if retry is not None:
                context.set_trailing_metadata((("retry-after-ms", str(int(retry * 1000))),))
            await context.abort(code, str(exc))
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            code = grpc.StatusCode.INTERNAL
            log.exception("unhandled error in %s", method)
            await context.abort(code, "internal error; it has been logged")
        finally:
            metrics.RPC_REQUESTS.labels(method, code.name).inc()
            metrics.RPC_DURATION.labels(method).observe(time.perf_counter() - started)
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


class ChatApi:
    def __init__(
        self,
        chat: ChatService,
        receipts: Receipts,
        changes: MessageChanges,
        auth: Authenticator,
        hub: Hub,
        store: SessionStore,
        streams: StreamSettings,
        presence: PresenceTracker,
        stream_slots: StreamSlots | None = None,
    ) -> None:
        # Open streams per user: cluster-wide in Redis (app.py), else counted in this process.
        self._slots = stream_slots or LocalStreamSlots(streams.max_per_user)
        self._chat = chat
        self._receipts = receipts
        self._changes = changes
        self._auth = auth
        self._hub = hub
        self._store = store
        self._streams = streams
        self._presence = presence
        self.draining = False  # set on SIGTERM: new calls get UNAVAILABLE, in-flight finish

    async def _caller(self, context: Ctx, field_token: str) -> UserProfile:
        user = self._auth.caller(context.invocation_metadata(), field_token)
        await self._chat.remember(user)  # display data for member lists (cached)
        return user

    # ---- groups ----

    @unary
    async def CreateGroup(self, request: pb.CreateGroupRequest, context: Ctx) -> pb.Group:
        caller = await self._caller(context, request.jwt_token)
        self._chat.check_acting_user(caller, request.created_by, "created_by")
        group = await self._chat.create_group(
            caller,
            name=request.name,
            description=request.description,
            member_ids=list(request.member_ids),
            invite_only=request.invite_only,
        )
        return convert.group(group)

    @unary
    async def GetGroup(self, request: pb.GetGroupRequest, context: Ctx) -> pb.Group:
        caller = await self._caller(context, request.jwt_token)
        return convert.group(await self._chat.get_group(caller, request.group_id))

    @unary
    async def ListMyGroups(
        self, request: pb.ListMyGroupsRequest, context: Ctx
    ) -> pb.ListMyGroupsResponse:
        caller = await self._caller(context, request.jwt_token)
        groups = await self._chat.list_my_groups(caller)
        return pb.ListMyGroupsResponse(groups=[convert.group(g) for g in groups])

    @unary
    async def JoinGroup(
        self, request: pb.JoinGroupRequest, context: Ctx
    ) -> pb.JoinGroupResponse:
        caller = await self._caller(context, request.jwt_token)
        result = await self._chat.join_group(caller, request.group_id, request.user_id)
        target = request.user_id or caller.id
        text = (
            f"user {target} joined group {request.group_id}"
            if result.changed
            else f"user {target} is already a member of group {request.group_id}"
        )
        return pb.JoinGroupResponse(success=True, message=text)

    @unary
    async def LeaveGroup(
        self, request: pb.LeaveGroupRequest, context: Ctx
    ) -> pb.LeaveGroupResponse:
        caller = await self._caller(context, request.jwt_token)
        result = await self._chat.leave_group(caller, request.group_id, request.user_id)
        target = request.user_id or caller.id
        text = (
            f"user {target} left group {request.group_id}"
            if result.changed
            else f"user {target} was not a member of group {request.group_id}"
        )
        return pb.LeaveGroupResponse(success=result.changed, message=text)

    @unary
    async def GetGroupMembers(
        self, request: pb.GetGroupMembersRequest, context: Ctx
    ) -> pb.GroupMembersResponse:
        caller = await self._caller(context, request.jwt_token)
        members = await self._chat.members(caller, request.group_id)
        return pb.GroupMembersResponse(members=[convert.member(m, on) for m, on in members])

    @unary
    async def SetMemberRole(self, request: pb.SetMemberRoleRequest, context: Ctx) -> pb.User:
        caller = await self._caller(context, request.jwt_token)
        member = await self._chat.set_role(
            caller, request.group_id, request.user_id, request.role
        )
        return convert.member(member, online=False)

    # ---- messages ----

    @unary
    async def SendMessage(
        self, request: pb.SendMessageRequest, context: Ctx
    ) -> pb.MessageResponse:
        caller = await self._caller(context, request.jwt_token)
        result = await self._chat.post_message(
            caller,
            group_id=request.group_id,
            content=request.content,
            kind=request.type,
            client_msg_id=request.client_msg_id,
            reply_to_id=request.reply_to_id,
            attachment_id=request.attachment_id,
        )
        metrics.MESSAGES_ACCEPTED.inc(0 if result.duplicate else 1)
        return convert.message(result.message)

    @unary
    async def GetMessageHistory(
        self, request: pb.GetHistoryRequest, context: Ctx
    ) -> pb.MessageHistoryResponse:
        caller = await self._caller(context, request.jwt_token)
        page = await self._chat.history(
            caller, request.group_id, request.before_id, request.limit
        )
        return pb.MessageHistoryResponse(
            messages=[convert.message(m) for m in page.messages], has_more=page.has_more
        )

    @unary
    async def SendTypingIndicator(
        self, request: pb.TypingRequest, context: Ctx
    ) -> pb.TypingResponse:
        caller = await self._caller(context, request.jwt_token)
        self._chat.check_acting_user(caller, request.user_id, "user_id")
        await self._chat.set_typing(caller, request.group_id, request.is_typing)
        return pb.TypingResponse(success=True)

    # ---- receipts, settings ----

    @unary
    async def MarkRead(self, request: pb.MarkReadRequest, context: Ctx) -> pb.MarkReadResponse:
        caller = await self._caller(context, request.jwt_token)
        result = await self._receipts.mark_read(caller, request.group_id, request.seq)
        return pb.MarkReadResponse(read_seq=result.read_seq, unread_count=result.unread_count)

    @unary
    async def GetReadReceipts(
        self, request: pb.GetReadReceiptsRequest, context: Ctx
    ) -> pb.ReadReceiptsResponse:
        caller = await self._caller(context, request.jwt_token)
        role = await self._chat.role(caller, request.group_id)
        readers, unread_by = await self._receipts.readers(
            caller, request.group_id, request.message_id, role != Role.NONE
        )
        return pb.ReadReceiptsResponse(
            readers=[convert.user(u) for u in readers], unread_by=unread_by
        )

    @unary
    async def UpdateMembership(
        self, request: pb.UpdateMembershipRequest, context: Ctx
    ) -> pb.Group:
        caller = await self._caller(context, request.jwt_token)
        if request.HasField("muted"):
            await self._receipts.set_muted(caller, request.group_id, request.muted)
        return convert.group(await self._chat.get_group(caller, request.group_id))

    @unary
    async def UpdateMySettings(
        self, request: pb.UpdateMySettingsRequest, context: Ctx
    ) -> pb.MySettings:
        caller = await self._caller(context, request.jwt_token)
        value = request.private_receipts if request.HasField("private_receipts") else None
        return pb.MySettings(private_receipts=await self._receipts.private_receipts(caller, value))

    # ---- edits, deletes, reactions, mentions ----

    @unary
    async def EditMessage(
        self, request: pb.EditMessageRequest, context: Ctx
    ) -> pb.MessageResponse:
        caller = await self._caller(context, request.jwt_token)
        return convert.message(
            await self._changes.edit(caller, request.message_id, request.content)
        )

    @unary
    async def DeleteMessage(
        self, request: pb.DeleteMessageRequest, context: Ctx
    ) -> pb.MessageResponse:
        caller = await self._caller(context, request.jwt_token)
        return convert.message(await self._changes.delete(caller, request.message_id))

    @unary
    async def AddReaction(
        self, request: pb.ReactionRequest, context: Ctx
    ) -> pb.ReactionResponse:
        return await self._react(request, context, add=True)

    @unary
    async def RemoveReaction(
        self, request: pb.ReactionRequest, context: Ctx
    ) -> pb.ReactionResponse:
        return await self._react(request, context, add=False)

    async def _react(
        self, request: pb.ReactionRequest, context: Ctx, add: bool
    ) -> pb.ReactionResponse:
        caller = await self._caller(context, request.jwt_token)
        message = await self._changes.react(caller, request.message_id, request.emoji, add)
        return pb.ReactionResponse(
            message_id=message.id, reactions=convert.message(message).reactions
        )

    @unary
    async def GetMyMentions(
        self, request: pb.GetMyMentionsRequest, context: Ctx
    ) -> pb.MessageHistoryResponse:
        caller = await self._caller(context, request.jwt_token)
        page = await self._chat.my_mentions(caller, request.before_id, request.limit)
        return pb.MessageHistoryResponse(
            messages=[convert.message(m) for m in page.messages], has_more=page.has_more
        )

    # ---- streams ----

    async def _session(self, user_id: int) -> tuple[Session, StreamSlot]:
        """A session for a new stream and the slot it holds in the user's stream cap
        (ResourceExhausted when all are taken); the stream's `finally` releases the slot."""
        s = self._streams
        slot = await self._slots.acquire(user_id)
        session = Session(
            self._hub,
            self._store,
            user_id,
            queue_max=s.queue_max,
            batch_max=s.batch_max,
            replay_max=s.replay_max,
        )
        return session, slot

    async def _stream_error(self, context: Ctx, method: str, exc: BaseException) -> None:
        """End a stream with a status the client can act on."""
        if isinstance(exc, ChatError):
            code, text = status_of(exc), str(exc)
        elif isinstance(exc, SubscriberLagged):
            metrics.SUBSCRIBERS_DROPPED.labels("lagged").inc()
            code = grpc.StatusCode.UNAVAILABLE
            text = f"subscriber fell too far behind; {RESUME_HINT}"
        elif isinstance(exc, SessionClosed):
            metrics.SUBSCRIBERS_DROPPED.labels("closed").inc()
            code, text = grpc.StatusCode.UNAVAILABLE, f"{exc.reason}; {RESUME_HINT}"
        else:
            log.error("unhandled error in %s", method, exc_info=exc)
            code, text = grpc.StatusCode.INTERNAL, "internal error; it has been logged"
        metrics.RPC_REQUESTS.labels(method, code.name).inc()
        await context.abort(code, text)

    async def Subscribe(self, request: pb.SubscribeRequest, context: Ctx) -> AsyncIterator[bytes]:
        try:
            if self.draining:
                raise Unavailable("server is shutting down; reconnect to another pod")
            caller = await self._caller(context, request.jwt_token)
            positions: dict[int, int] = {}
            update_positions: dict[int, int] = {}
            for p in request.positions:
                if p.group_id <= 0 or p.last_seq < 0 or p.last_update_seq < 0:
                    raise InvalidArgument(
                        "positions need a positive group_id and non-negative seqs"
                    )
                positions[p.group_id] = p.last_seq
                if p.last_seq > 0:
                    update_positions[p.group_id] = p.last_update_seq
            session, slot = await self._session(caller.id)
        except ChatError as exc:
            await self._stream_error(context, "Subscribe", exc)
            return
        metrics.OPEN_STREAMS.labels("Subscribe").inc()
        online = False
        try:
            await session.start(positions, update_positions)
            # After registering, so this stream also sees the user's own "online" event.
            await self._presence.connected(caller.id, session.group_ids)
            online = True
            # Initial metadata tells the client it is registered: from here on nothing of its
            # groups can be missed (what the replay below does not cover arrives live).
            await context.send_initial_metadata((("chat-subscribed", "1"),))
            async for batch in session.replay():
                yield _entries(batch)
            heartbeat = self._streams.heartbeat_seconds
            while True:
                batch = await session.next_batch(heartbeat)
                if not batch:
                    batch = [Delivery.heartbeat()]
                yield _entries(batch)
        except (ChatError, SubscriberLagged, SessionClosed) as exc:
            await self._stream_error(context, "Subscribe", exc)
        finally:
            session.close()
            await self._slots.release(slot)
            metrics.OPEN_STREAMS.labels("Subscribe").dec()
            if online:
                await self._presence.disconnected(caller.id)

    async def StreamMessages(
        self, request_iterator: AsyncIterator[pb.MessageRequest], context: Ctx
    ) -> AsyncIterator[bytes]:
        requests = request_iterator.__aiter__()
        first: pb.MessageRequest | None = None
        try:
            if self.draining:
                raise Unavailable("server is shutting down; reconnect to another pod")
            token = bearer_from_metadata(context.invocation_metadata())
            if not token:
                # Clients of the original proto authenticate with the first request's token.
                try:
                    first = await requests.__anext__()
                except StopAsyncIteration:
                    return
                token = first.jwt_token
            caller = await self._caller(context, token)
            session, slot = await self._session(caller.id)
        except ChatError as exc:
            await self._stream_error(context, "StreamMessages", exc)
            return
        failure: list[BaseException] = []
        metrics.OPEN_STREAMS.labels("StreamMessages").inc()

        async def post_all() -> None:
            try:
                if first is not None:
                    await self._post_from_stream(caller, token, first)
                async for req in requests:
                    await self._post_from_stream(caller, token, req)
                session.sub.close("client finished sending")
            except (ChatError, grpc.aio.AbortError) as exc:
                failure.append(exc)
                session.sub.close("request refused")
            except Exception as exc:  # a broken request stream ends only this caller's stream
                failure.append(exc)
                session.sub.close("request stream failed")

        poster: asyncio.Task[None] | None = None
        online = False
        try:
            await session.start({})  # live from now, as in the original plan
            await self._presence.connected(caller.id, session.group_ids)
            online = True
            await context.send_initial_metadata((("chat-subscribed", "1"),))
            poster = asyncio.create_task(post_all())
            heartbeat = self._streams.heartbeat_seconds
            while True:
                try:
                    batch = await session.next_batch(heartbeat)
                except SessionClosed:
                    if failure:
                        raise failure[0] from None
                    return  # the client half-closed: end the stream like the original server
                for d in batch:
                    if d.kind == "message":
                        yield d.message_bytes()
        except (ChatError, SubscriberLagged, SessionClosed) as exc:
            await self._stream_error(context, "StreamMessages", exc)
        finally:
            if poster is not None:
                poster.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await poster
            session.close()
            await self._slots.release(slot)
            metrics.OPEN_STREAMS.labels("StreamMessages").dec()
            if online:
                await self._presence.disconnected(caller.id)

    async def _post_from_stream(
        self, caller: UserProfile, token: str, req: pb.MessageRequest
    ) -> None:
        if req.jwt_token and req.jwt_token != token:
            other = self._auth.caller(None, req.jwt_token)
            if other.id != caller.id:
                raise PermissionDenied("every request on a stream must carry the same user")
        self._chat.check_acting_user(caller, req.user_id, "user_id")
        result = await self._chat.post_message(
            caller,
            group_id=req.group_id,
            content=req.content,
            kind=req.type,
            client_msg_id=req.client_msg_id,
            reply_to_id=req.reply_to_id,
            attachment_id=req.attachment_id,
        )
        metrics.MESSAGES_ACCEPTED.inc(0 if result.duplicate else 1)


def _entries(batch: list[Delivery]) -> bytes:
    metrics.STREAM_WRITES.inc()
    metrics.EVENTS_DELIVERED.inc(len(batch))
    for d in batch:
        if d.kind == "message":
            ts = d.event.message.timestamp_ms
            if ts:
                metrics.DELIVERY_LATENCY.observe(max(0.0, time.time() - ts / 1000))
            break
    return b"".join(d.entry for d in batch)
