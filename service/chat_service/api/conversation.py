"""gRPC handlers of threads, search, pins and mark-unread: proto in, domain call, proto out.
Like api/servicer.py, through the call gate's @unary (errors via the one status table)."""

from __future__ import annotations

from chat_service.api.calls import Callers, Ctx, Draining, unary
from chat_service.domain.pins import Pins
from chat_service.domain.receipts import Receipts
from chat_service.domain.search import Search, page_token
from chat_service.domain.threads import Threads
from chat_service.gen import chat_pb2 as pb
from chat_service.telemetry import metrics
from chat_service.wire import convert


class ConversationApi:
    def __init__(
        self,
        threads: Threads,
        search: Search,
        pins: Pins,
        receipts: Receipts,
        callers: Callers,
        draining: Draining,
    ) -> None:
        self._threads = threads
        self._search = search
        self._pins = pins
        self._receipts = receipts
        self._caller = callers
        self.draining = draining

    # ---- threads ----

    @unary
    async def ReplyInThread(
        self, request: pb.ThreadReplyRequest, context: Ctx
    ) -> pb.MessageResponse:
        caller = await self._caller(context, request.jwt_token)
        reply = await self._threads.reply(
            caller,
            request.parent_id,
            request.content,
            request.client_msg_id,
            request.also_in_group,
        )
        metrics.MESSAGES_ACCEPTED.inc()
        return convert.message(reply)

    @unary
    async def GetThread(self, request: pb.GetThreadRequest, context: Ctx) -> pb.ThreadResponse:
        caller = await self._caller(context, request.jwt_token)
        page = await self._threads.thread(
            caller, request.parent_id, request.after_seq, request.limit
        )
        return pb.ThreadResponse(
            parent=convert.message(page.parent),
            replies=[convert.message(m) for m in page.replies],
            has_more=page.has_more,
            read_seq=page.read_seq,
            unread_count=page.unread_count,
        )

    @unary
    async def MarkThreadRead(
        self, request: pb.MarkThreadReadRequest, context: Ctx
    ) -> pb.ThreadReadResponse:
        caller = await self._caller(context, request.jwt_token)
        read = await self._threads.mark_read(caller, request.parent_id, request.seq)
        return pb.ThreadReadResponse(
            read_seq=read.read_seq,
            unread_count=read.unread_count,
            group_thread_unread=read.group_thread_unread,
        )

    # ---- search ----

    @unary
    async def SearchMessages(
        self, request: pb.SearchMessagesRequest, context: Ctx
    ) -> pb.SearchMessagesResponse:
        caller = await self._caller(context, request.jwt_token)
        page = await self._search.search(
            caller, request.query, request.group_id, request.limit, request.page_token
        )
        return pb.SearchMessagesResponse(
            hits=[convert.search_hit(h) for h in page.hits],
            next_page_token=page_token(page.next_offset),
        )

    # ---- pins ----

    @unary
    async def PinMessage(
        self, request: pb.PinMessageRequest, context: Ctx
    ) -> pb.MessageResponse:
        return await self._pin(request, context, pinned=True)

    @unary
    async def UnpinMessage(
        self, request: pb.PinMessageRequest, context: Ctx
    ) -> pb.MessageResponse:
        return await self._pin(request, context, pinned=False)

    async def _pin(
        self, request: pb.PinMessageRequest, context: Ctx, pinned: bool
    ) -> pb.MessageResponse:
        caller = await self._caller(context, request.jwt_token)
        return convert.message(await self._pins.set_pin(caller, request.message_id, pinned))

    @unary
    async def ListPinned(
        self, request: pb.ListPinnedRequest, context: Ctx
    ) -> pb.MessageHistoryResponse:
        caller = await self._caller(context, request.jwt_token)
        pinned = await self._pins.pinned(caller, request.group_id)
        return pb.MessageHistoryResponse(messages=[convert.message(m) for m in pinned])

    # ---- mark unread ----

    @unary
    async def MarkUnread(
        self, request: pb.MarkUnreadRequest, context: Ctx
    ) -> pb.MarkUnreadResponse:
        caller = await self._caller(context, request.jwt_token)
        result = await self._receipts.mark_unread(caller, request.group_id, request.message_id)
        return pb.MarkUnreadResponse(
            read_seq=result.read_seq,
            unread_count=result.unread_count,
            mention_count=result.mention_count,
        )
