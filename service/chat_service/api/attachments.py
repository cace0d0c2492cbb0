"""gRPC handlers of file and image sharing: proto in, AttachmentService call, proto out.

StartUpload, UploadChunk (one call per chunk: gRPC-Web), UploadFile (client streaming:
native gRPC), GetUpload and DownloadFile (server streaming, chunks of at most 256 KiB).
Errors are the domain's, mapped to statuses by the same table as every other RPC.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

from chat_service.api.calls import Callers, Ctx, Draining, streaming, unary
from chat_service.attachments.service import AttachmentService
from chat_service.domain.errors import InvalidArgument
from chat_service.gen import chat_pb2 as pb
from chat_service.wire import convert


class AttachmentApi:
    def __init__(self, service: AttachmentService, callers: Callers, draining: Draining) -> None:
        self._service = service
        self._caller = callers
        self.draining = draining

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

    @streaming(live=False)
    async def DownloadFile(
        self, request: pb.DownloadFileRequest, context: Ctx
    ) -> AsyncGenerator[pb.DownloadChunk, None]:
        """The first chunk carries the attachment's metadata; every chunk at most 256 KiB."""
        caller = await self._caller(context, request.jwt_token)
        att, pieces = await self._service.download(caller, request.attachment_id)
        first: pb.Attachment | None = convert.attachment(att)
        async with contextlib.aclosing(pieces):
            async for data in pieces:
                yield pb.DownloadChunk(attachment=first, data=data)
                first = None
