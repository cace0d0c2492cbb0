"""gRPC handlers of the user-facing issue-15 RPCs of chat.ChatService: group administration,
direct conversations, moderation. Proto in, domain call, proto out."""

from __future__ import annotations

from chat_service.api.calls import Callers, Ctx, Draining, unary
from chat_service.domain.direct import DirectMessages
from chat_service.domain.group_admin import GroupAdmin
from chat_service.domain.models import GroupChanges
from chat_service.domain.moderation import Moderation
from chat_service.gen import chat_backend_pb2 as bpb
from chat_service.gen import chat_pb2 as pb
from chat_service.wire import convert


def changes_of(request: pb.UpdateGroupRequest | bpb.BackendUpdateGroupRequest) -> GroupChanges:
    """The fields an UpdateGroup request sets (a ChatBackend one has the same names)."""
    return GroupChanges(
        name=request.name if request.HasField("name") else None,
        description=request.description if request.HasField("description") else None,
        avatar=request.avatar if request.HasField("avatar") else None,
        invite_only=request.invite_only if request.HasField("invite_only") else None,
        archived=request.archived if request.HasField("archived") else None,
    )


class AdminApi:
    def __init__(
        self,
        admin: GroupAdmin,
        directs: DirectMessages,
        moderation: Moderation,
        callers: Callers,
        draining: Draining,
    ) -> None:
        self._admin = admin
        self._directs = directs
        self._moderation = moderation
        self._caller = callers
        self.draining = draining

    @unary
    async def UpdateGroup(self, request: pb.UpdateGroupRequest, context: Ctx) -> pb.Group:
        caller = await self._caller(context, request.jwt_token)
        return convert.group(
            await self._admin.update_group(caller, request.group_id, changes_of(request))
        )

    @unary
    async def GetOrCreateDirect(
        self, request: pb.GetOrCreateDirectRequest, context: Ctx
    ) -> pb.Group:
        caller = await self._caller(context, request.jwt_token)
        return convert.group(await self._directs.get_or_create(caller, request.user_id))

    @unary
    async def ModerateMember(
        self, request: pb.ModerateMemberRequest, context: Ctx
    ) -> pb.ModerationAction:
        caller = await self._caller(context, request.jwt_token)
        action = await self._moderation.moderate(
            caller, request.group_id, request.user_id, request.kind, request.reason,
            request.duration_seconds,
        )
        return convert.moderation(action)

    @unary
    async def ListModeration(
        self, request: pb.ListModerationRequest, context: Ctx
    ) -> pb.ListModerationResponse:
        caller = await self._caller(context, request.jwt_token)
        actions, more = await self._moderation.list_actions(
            caller, request.group_id, request.before_id, request.limit
        )
        return pb.ListModerationResponse(
            actions=[convert.moderation(a) for a in actions], has_more=more
        )

    @unary
    async def ReportMessage(
        self, request: pb.ReportMessageRequest, context: Ctx
    ) -> pb.ModerationAction:
        caller = await self._caller(context, request.jwt_token)
        return convert.moderation(
            await self._moderation.report(caller, request.message_id, request.reason)
        )
