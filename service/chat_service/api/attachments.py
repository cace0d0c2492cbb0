"""gRPC handlers of file and image sharing: proto in, AttachmentService call, proto out.

StartUpload, UploadChunk (one call per chunk: gRPC-Web), UploadFile (client streaming:
native gRPC), GetUpload and DownloadFile (server streaming, chunks of at most 256 KiB).
Errors are the domain's, mapped to statuses by the same table as every other RPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from chat_service.api.errors import status_of
from chat_service.api.servicer import Ctx, unary
from chat_service.attachments.service import AttachmentService
from chat_service.domain.errors import ChatError, InvalidArgument, Unavailable
from chat_service.domain.models import UserProfile
from chat_service.gen import chat_pb2 as pb
from chat_service.telemetry import metrics
from chat_service.wire import convert

log = logging.getLogger(__name__)

Caller = Callable[[Ctx, str], Awaitable[UserProfile]]


class AttachmentApi:
    def __init__(self, service: AttachmentService, caller: Caller) -> None:
        self._service = service
        self._caller = caller
        self._draining = False

    @property
    def draining(self) -> bool:
        """Follows the ChatApi that `caller` belongs to (set on SIGTERM), or set directly."""
        owner = getattr(self._caller, "__self__", None)
        return self._draining or bool(getattr(owner, "draining", False))

    @draining.setter
    def draining(self, value: bool) -> None:
        self._draining = value

    @unary
    async def StartUpload(self, request: pb.StartUploadRequest, context: Ctx) -> pb.UploadStatus:
        caller = await self._caller(context, request.jwt_token)
        att = await self._service.start_upload(
            caller,
            group_id=request.group_id,
            file_name=request.file_name,
            content_type=request.content_type,
            size=request.size,
            sha256=request.sha256,
        )
        return convert.upload_status(att)

    @unary
    async def UploadChunk(self, request: pb.UploadChunkRequest, context: Ctx) -> pb.UploadStatus:
        caller = await self._caller(context, request.jwt_token)
        att = await self._service.upload_chunk(
            caller, request.upload_id, request.offset, request.data
        )
        return convert.upload_status(att)

    @unary
    async def GetUpload(self, request: pb.GetUploadRequest, context: Ctx) -> pb.UploadStatus:
        caller = await self._caller(context, request.jwt_token)
        return convert.upload_status(await self._service.get_upload(caller, request.upload_id))

    @unary  # the decorator passes the request (here: the request stream) through unchanged
    async def UploadFile(
        self, request_iterator: AsyncIterator[pb.UploadChunkRequest], context: Ctx
    ) -> pb.UploadStatus:
        """Chunks in order on one stream; the first names the upload (and may carry the
        token). Each chunk is stored as it arrives, so a broken stream loses nothing that
        was received: GetUpload tells where to resume."""
        requests = request_iterator.__aiter__()
        try:
            first = await requests.__anext__()
        except StopAsyncIteration:
            raise InvalidArgument("send at least one UploadChunkRequest naming upload_id") from None
        caller = await self._caller(context, first.jwt_token)
        upload_id = first.upload_id
        if not upload_id:
            raise InvalidArgument("the first UploadChunkRequest must carry upload_id")
        att = await self._service.upload_chunk(caller, upload_id, first.offset, first.data)
        async for request in requests:
            if request.upload_id and request.upload_id != upload_id:
                raise InvalidArgument("every UploadChunkRequest on a stream must name one upload")
            att = await self._service.upload_chunk(caller, upload_id, request.offset, request.data)
        return convert.upload_status(att)

    async def DownloadFile(
        self, request: pb.DownloadFileRequest, context: Ctx
    ) -> AsyncIterator[pb.DownloadChunk]:
        """The first chunk carries the attachment's metadata; every chunk at most 256 KiB."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            if self.draining:
                raise Unavailable("server is shutting down; retry (another pod will answer)")
            caller = await self._caller(context, request.jwt_token)
            att, pieces = await self._service.download(caller, request.attachment_id)
            first: pb.Attachment | None = convert.attachment(att)
            async with contextlib.aclosing(pieces):
                async for data in pieces:
                    yield pb.DownloadChunk(attachment=first, data=data)
                    first = None
        except ChatError as exc:
            code = status_of(exc)
            await context.abort(code, str(exc))
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except grpc.aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("unhandled error in DownloadFile")
            await context.abort(code, "internal error; it has been logged")
        finally:
            metrics.RPC_REQUESTS.labels("DownloadFile", code.name).inc()
            metrics.RPC_DURATION.labels("DownloadFile").observe(time.perf_counter() - started)

