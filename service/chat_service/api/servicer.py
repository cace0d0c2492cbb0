"""gRPC handlers of the unary RPCs: proto in, domain call, proto out. No business rules
live here; the call gate (api/gate.py, api/calls.py) authenticates, admits and maps errors."""

from __future__ import annotations

from chat_service.api.calls import Callers, Ctx, Draining, unary
from chat_service.domain.chat import ChatService
from chat_service.domain.message_changes import MessageChanges
from chat_service.domain.models import Message, UserProfile
from chat_service.domain.receipts import Receipts
from chat_service.gen import chat_pb2 as pb
from chat_service.telemetry import metrics
from chat_service.wire import convert


class ChatApi:
    """Groups, messages, receipts, settings, edits, reactions, mentions: the unary RPCs.
    The streams are api/streams.py's, file sharing api/attachments.py's."""

    def __init__(
        self,
        chat: ChatService,
        receipts: Receipts,
        changes: MessageChanges,
        callers: Callers,
        draining: Draining,
    ) -> None:
        self._chat = chat
        self._receipts = receipts
        self._changes = changes
        self._caller = callers
        self.draining = draining

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
        return convert.message(await post(self._chat, caller, request))

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
        readers, unread_by = await self._receipts.readers(
            caller, request.group_id, request.message_id
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


async def post(
    chat: ChatService, caller: UserProfile, request: pb.SendMessageRequest | pb.MessageRequest
) -> Message:
    """Post the message a SendMessage call or a StreamMessages request carries."""
    result = await chat.post_message(
        caller,
        group_id=request.group_id,
        content=request.content,
        kind=request.type,
        client_msg_id=request.client_msg_id,
        reply_to_id=request.reply_to_id,
        attachment_id=request.attachment_id,
    )
    metrics.MESSAGES_ACCEPTED.inc(0 if result.duplicate else 1)
    return result.message
