"""Domain values to protobuf messages (and back where requests need it)."""

from __future__ import annotations

from chat_service.domain.models import (
    ChatEvent,
    Group,
    Member,
    MembershipChanged,
    Message,
    MessagePosted,
    PresenceChanged,
    TypingChanged,
)
from chat_service.gen import chat_pb2 as pb


def message(m: Message) -> pb.MessageResponse:
    return pb.MessageResponse(
        id=m.id,
        group_id=m.group_id,
        user_id=m.sender.id,
        user_name=m.sender.name,
        user_avatar=m.sender.avatar,
        content=m.content,
        type=int(m.kind),  # type: ignore[arg-type]
        timestamp=m.created_at_ms // 1000,
        seq=m.seq,
        client_msg_id=m.client_msg_id,
        timestamp_ms=m.created_at_ms,
    )


def group(g: Group) -> pb.Group:
    return pb.Group(
        id=g.id,
        name=g.name,
        description=g.description,
        member_ids=list(g.member_ids),
        created_by=g.created_by,
        created_at=g.created_at_ms // 1000,
        invite_only=g.invite_only,
        last_seq=g.last_seq,
        member_count=g.member_count,
        my_role=int(g.my_role),  # type: ignore[arg-type]
    )


def member(m: Member, online: bool) -> pb.User:
    return pb.User(
        id=m.user.id,
        name=m.user.name,
        email=m.user.email,
        avatar=m.user.avatar,
        online=online,
        role=int(m.role),  # type: ignore[arg-type]
    )


def event(e: ChatEvent) -> pb.ChatEvent:
    match e:
        case MessagePosted(message=m):
            return pb.ChatEvent(message=message(m))
        case TypingChanged(group_id=gid, user_id=uid, is_typing=typing):
            return pb.ChatEvent(
                typing=pb.TypingEvent(
                    group_id=gid,
                    user_id=uid,
                    is_typing=typing,
                    typing_user_ids=[uid] if typing else [],
                )
            )
        case MembershipChanged():
            return pb.ChatEvent(
                member=pb.MemberEvent(
                    group_id=e.group_id,
                    kind=int(e.change),  # type: ignore[arg-type]
                    user=pb.User(
                        id=e.user.id,
                        name=e.user.name,
                        avatar=e.user.avatar,
                        role=int(e.role),  # type: ignore[arg-type]
                    ),
                    actor_id=e.actor_id,
                    seq=e.seq,
                )
            )
        case PresenceChanged(user_id=uid, online=online):
            return pb.ChatEvent(presence=pb.PresenceEvent(user_id=uid, online=online))
    raise TypeError(f"unknown event {e!r}")  # pragma: no cover


def group_of(e: ChatEvent) -> int:
    if isinstance(e, MessagePosted):
        return e.message.group_id
    if isinstance(e, PresenceChanged):
        return 0
    return e.group_id
