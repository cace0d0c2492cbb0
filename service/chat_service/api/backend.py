"""gRPC handlers of chat.ChatBackend, the app's backend API (proto/chat_backend.proto).

The call gate (api/gate.py) has verified the backend token before the request is read; each
handler verifies it again (`BackendCallers`), so the servicer is safe even if served without
the gate. Every use case is called with actor None: the backend.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from chat_service.api.admin import changes_of
from chat_service.api.auth import bearer_from_metadata
from chat_service.api.calls import Ctx, Draining, streaming, unary
from chat_service.auth.backend import BackendCaller, BackendVerifier
from chat_service.domain.directory import Directory
from chat_service.domain.erasure import Erased, Erasure
from chat_service.domain.group_admin import GroupAdmin
from chat_service.domain.models import UserProfile
from chat_service.domain.moderation import Moderation
from chat_service.gen import chat_backend_pb2 as bpb
from chat_service.wire import backend_convert as convert


class BackendCallers:
    def __init__(self, verifier: BackendVerifier) -> None:
        self._verifier = verifier

    def __call__(self, context: Ctx) -> BackendCaller:
        return self._verifier.verify(bearer_from_metadata(context.invocation_metadata()))


def _result(r: Erased | int) -> bpb.BackendUserResult:
    if isinstance(r, int):
        return bpb.BackendUserResult(groups_left=r)
    return bpb.BackendUserResult(
        groups_left=r.groups_left, messages=r.messages, attachments=r.attachments
    )


class BackendApi:
    def __init__(
        self,
        directory: Directory,
        admin: GroupAdmin,
        moderation: Moderation,
        erasure: Erasure,
        callers: BackendCallers,
        draining: Draining,
    ) -> None:
        self._directory = directory
        self._admin = admin
        self._moderation = moderation
        self._erasure = erasure
        self._caller = callers
        self.draining = draining

    # ---- user directory ----

    @unary
    async def UpsertUsers(
        self, request: bpb.UpsertUsersRequest, context: Ctx
    ) -> bpb.UpsertUsersResponse:
        self._caller(context)
        users = [
            UserProfile(id=u.id, name=u.name, email=u.email, avatar=u.avatar,
                        custom_json=u.custom_json)
            for u in request.users
        ]
        return bpb.UpsertUsersResponse(changed_ids=await self._directory.upsert_users(users))

    @unary
    async def DeleteUser(
        self, request: bpb.BackendUserRef, context: Ctx
    ) -> bpb.BackendUserResult:
        self._caller(context)
        return _result(await self._directory.delete_user(request.user_id))

    # ---- groups ----

    @unary
    async def CreateGroup(
        self, request: bpb.BackendCreateGroupRequest, context: Ctx
    ) -> bpb.BackendGroup:
        self._caller(context)
        group = await self._admin.create_group(
            owner_id=request.owner_id,
            name=request.name,
            description=request.description,
            avatar=request.avatar,
            invite_only=request.invite_only,
            member_ids=list(request.member_ids),
        )
        return convert.group(group)

    @unary
    async def UpdateGroup(
        self, request: bpb.BackendUpdateGroupRequest, context: Ctx
    ) -> bpb.BackendGroup:
        self._caller(context)
        return convert.group(
            await self._admin.update_group(None, request.group_id, changes_of(request))
        )

    @unary
    async def DeleteGroup(
        self, request: bpb.BackendGroupRef, context: Ctx
    ) -> bpb.BackendUserResult:
        self._caller(context)
        await self._admin.delete_group(request.group_id)
        return bpb.BackendUserResult()

    @unary
    async def AddMembers(
        self, request: bpb.BackendMembersRequest, context: Ctx
    ) -> bpb.BackendMembersResponse:
        self._caller(context)
        changed = await self._admin.add_members(request.group_id, list(request.user_ids))
        return bpb.BackendMembersResponse(changed_ids=changed)

    @unary
    async def RemoveMembers(
        self, request: bpb.BackendMembersRequest, context: Ctx
    ) -> bpb.BackendMembersResponse:
        self._caller(context)
        changed = await self._admin.remove_members(request.group_id, list(request.user_ids))
        return bpb.BackendMembersResponse(changed_ids=changed)

    @unary
    async def PostMessage(
        self, request: bpb.BackendPostRequest, context: Ctx
    ) -> bpb.BackendPosted:
        self._caller(context)
        result = await self._admin.post(
            request.group_id, request.content, request.act_as, request.client_msg_id
        )
        return convert.posted(result)

    # ---- moderation ----

    @unary
    async def ModerateMember(
        self, request: bpb.BackendModerateRequest, context: Ctx
    ) -> bpb.BackendModeration:
        self._caller(context)
        action = await self._moderation.moderate(
            None, request.group_id, request.user_id, request.kind, request.reason,
            request.duration_seconds,
        )
        return convert.moderation(action)

    @unary
    async def BanUser(
        self, request: bpb.BackendBanUserRequest, context: Ctx
    ) -> bpb.BackendModeration:
        self._caller(context)
        return convert.moderation(await self._moderation.ban_user(
            request.user_id, request.reason, request.duration_seconds
        ))

    @unary
    async def UnbanUser(
        self, request: bpb.BackendUserRef, context: Ctx
    ) -> bpb.BackendModeration:
        self._caller(context)
        return convert.moderation(await self._moderation.unban_user(request.user_id))

    @unary
    async def ListModeration(
        self, request: bpb.BackendListModerationRequest, context: Ctx
    ) -> bpb.BackendModerationList:
        self._caller(context)
        actions, more = await self._moderation.list_actions(
            None, request.group_id, request.before_id, request.limit
        )
        return bpb.BackendModerationList(
            actions=[convert.moderation(a) for a in actions], has_more=more
        )

    # ---- GDPR ----

    @unary
    async def EraseUser(
        self, request: bpb.BackendUserRef, context: Ctx
    ) -> bpb.BackendUserResult:
        self._caller(context)
        return _result(await self._erasure.erase(request.user_id))

    @streaming(live=False)
    async def ExportUser(
        self, request: bpb.BackendUserRef, context: Ctx
    ) -> AsyncGenerator[bpb.ExportChunk, None]:
        self._caller(context)
        async for chunk in self._erasure.export(request.user_id):
            yield bpb.ExportChunk(json_lines=chunk)
