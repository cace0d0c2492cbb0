"""Domain values to the backend API's messages (proto/chat_backend.proto)."""

from __future__ import annotations

from chat_service.domain.models import Group, ModerationAction, PostResult
from chat_service.gen import chat_backend_pb2 as bpb


def group(g: Group) -> bpb.BackendGroup:
    return bpb.BackendGroup(
        id=g.id,
        name=g.name,
        description=g.description,
        avatar=g.avatar,
        invite_only=g.invite_only,
        archived=g.archived,
        direct=g.direct,
        member_count=g.member_count,
        last_seq=g.last_seq,
        created_by=g.created_by,
        created_at_ms=g.created_at_ms,
    )


def moderation(a: ModerationAction) -> bpb.BackendModeration:
    return bpb.BackendModeration(
        id=a.id,
        group_id=a.group_id,
        user_id=a.user_id,
        actor_id=a.actor_id,
        kind=int(a.kind),  # type: ignore[arg-type]
        reason=a.reason,
        expires_at_ms=a.expires_at_ms,
        created_at_ms=a.created_at_ms,
        message_id=a.message_id,
    )


def posted(r: PostResult) -> bpb.BackendPosted:
    m = r.message
    return bpb.BackendPosted(id=m.id, group_id=m.group_id, seq=m.seq, user_id=m.sender.id,
                             duplicate=r.duplicate)
