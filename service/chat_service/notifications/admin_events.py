"""Webhook bodies of the issue-15 events: group updated/deleted, moderation actions (bans,
mutes, reports, backend-wide bans). Each is keyed by its Redis entry id, so a redelivery after
a crash carries the same `Idempotency-Key`."""

from __future__ import annotations

from typing import Any

from chat_service.gen import chat_pb2 as pb

_MODERATION_TYPES = {
    pb.ModerationAction.BAN: "member.banned",
    pb.ModerationAction.UNBAN: "member.unbanned",
    pb.ModerationAction.MUTE: "member.muted",
    pb.ModerationAction.UNMUTE: "member.unmuted",
    pb.ModerationAction.REPORT: "message.reported",
    pb.ModerationAction.USER_BAN: "user.banned",
    pb.ModerationAction.USER_UNBAN: "user.unbanned",
}


def describe(event: pb.ChatEvent) -> dict[str, Any] | None:
    """The webhook body of an issue-15 event, or None when the app is not told about it."""
    kind = event.WhichOneof("event")
    if kind == "group_updated":
        e = event.group_updated
        g = e.group
        return {"type": "group.updated", "actor_id": e.actor_id, "group": {
            "id": g.id, "name": g.name, "description": g.description, "avatar": g.avatar,
            "invite_only": g.invite_only, "archived": g.archived}}
    if kind == "group_deleted":
        return {"type": "group.deleted", "group": {"id": event.group_deleted.group_id},
                "actor_id": event.group_deleted.actor_id}
    if kind == "moderation":
        a = event.moderation.action
        return {"type": _MODERATION_TYPES.get(a.kind, "moderation"), "action": {
            "id": a.id, "group_id": a.group_id, "user_id": a.user_id, "actor_id": a.actor_id,
            "kind": pb.ModerationAction.Kind.Name(a.kind), "reason": a.reason,
            "expires_at_ms": a.expires_at_ms, "created_at_ms": a.created_at_ms,
            "message_id": a.message_id}}
    return None
