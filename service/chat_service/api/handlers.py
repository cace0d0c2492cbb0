"""Registers ChatApi with a grpc.aio server.

Unary methods use the generated message classes. The two streaming methods yield bytes that
are already serialized (events are encoded once per pod, not once per recipient), so their
response serializer passes bytes through unchanged; the wire format is exactly
SubscribeResponse / MessageResponse.
"""

from __future__ import annotations

from typing import Any

import grpc

from chat_service.api.attachments import AttachmentApi
from chat_service.api.servicer import ChatApi
from chat_service.gen import chat_pb2 as pb

SERVICE = "chat.ChatService"

_UNARY: dict[str, tuple[Any, Any]] = {
    "CreateGroup": (pb.CreateGroupRequest, pb.Group),
    "JoinGroup": (pb.JoinGroupRequest, pb.JoinGroupResponse),
    "LeaveGroup": (pb.LeaveGroupRequest, pb.LeaveGroupResponse),
    "GetGroupMembers": (pb.GetGroupMembersRequest, pb.GroupMembersResponse),
    "SetMemberRole": (pb.SetMemberRoleRequest, pb.User),
    "GetMessageHistory": (pb.GetHistoryRequest, pb.MessageHistoryResponse),
    "SendTypingIndicator": (pb.TypingRequest, pb.TypingResponse),
    "SendMessage": (pb.SendMessageRequest, pb.MessageResponse),
    "ListMyGroups": (pb.ListMyGroupsRequest, pb.ListMyGroupsResponse),
    "GetGroup": (pb.GetGroupRequest, pb.Group),
    "MarkRead": (pb.MarkReadRequest, pb.MarkReadResponse),
    "GetReadReceipts": (pb.GetReadReceiptsRequest, pb.ReadReceiptsResponse),
    "UpdateMembership": (pb.UpdateMembershipRequest, pb.Group),
    "UpdateMySettings": (pb.UpdateMySettingsRequest, pb.MySettings),
    "EditMessage": (pb.EditMessageRequest, pb.MessageResponse),
    "DeleteMessage": (pb.DeleteMessageRequest, pb.MessageResponse),
    "AddReaction": (pb.ReactionRequest, pb.ReactionResponse),
    "RemoveReaction": (pb.ReactionRequest, pb.ReactionResponse),
    "GetMyMentions": (pb.GetMyMentionsRequest, pb.MessageHistoryResponse),
}

# File sharing lives in api/attachments.py (AttachmentApi).
_ATTACHMENT_UNARY: dict[str, tuple[Any, Any]] = {
    "StartUpload": (pb.StartUploadRequest, pb.UploadStatus),
    "UploadChunk": (pb.UploadChunkRequest, pb.UploadStatus),
    "GetUpload": (pb.GetUploadRequest, pb.UploadStatus),
}


def _passthrough(data: bytes) -> bytes:
    return data


def generic_handler(api: ChatApi, attachments: AttachmentApi) -> grpc.GenericRpcHandler:
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(api, name),
            request_deserializer=req.FromString,
            response_serializer=resp.SerializeToString,
        )
        for name, (req, resp) in _UNARY.items()
    }
    handlers["Subscribe"] = grpc.unary_stream_rpc_method_handler(
        api.Subscribe,
        request_deserializer=pb.SubscribeRequest.FromString,
        response_serializer=_passthrough,
    )
    handlers["StreamMessages"] = grpc.stream_stream_rpc_method_handler(
        api.StreamMessages,
        request_deserializer=pb.MessageRequest.FromString,
        response_serializer=_passthrough,
    )
    # file sharing: api/attachments.py
    for name, (req, resp) in _ATTACHMENT_UNARY.items():
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            getattr(attachments, name),
            request_deserializer=req.FromString,
            response_serializer=resp.SerializeToString,
        )
    handlers["UploadFile"] = grpc.stream_unary_rpc_method_handler(
        attachments.UploadFile,
        request_deserializer=pb.UploadChunkRequest.FromString,
        response_serializer=pb.UploadStatus.SerializeToString,
    )
    handlers["DownloadFile"] = grpc.unary_stream_rpc_method_handler(
        attachments.DownloadFile,
        request_deserializer=pb.DownloadFileRequest.FromString,
        response_serializer=pb.DownloadChunk.SerializeToString,
    )
    declared = {m.name for m in pb.DESCRIPTOR.services_by_name["ChatService"].methods}
    missing = declared - set(handlers)
    if missing:
        raise RuntimeError(f"RPCs declared in chat.proto without a handler: {sorted(missing)}")
    return grpc.method_handlers_generic_handler(SERVICE, handlers)
