"""Domain values to protobuf messages: the API's answers and the events' payloads."""

from __future__ import annotations

from chat_service.attachments.models import Attachment
from chat_service.domain.conversation import SearchHit
from chat_service.domain.models import (
    AccessRevoked,
    ActionKind,
    AttachmentInfo,
    ChatEvent,
    Group,
    GroupDeleted,
    GroupUpdated,
    Member,
    MembershipChanged,
    Mentioned,
    Message,
    MessagePosted,
    MessageUpdated,
    ModerationAction,
    ModerationRecorded,
    PinChanged,
    PresenceChanged,
    ReceiptMoved,
    ThreadReplied,
    TypingChanged,
    UserProfile,
    UserUpdated,
)
from chat_service.gen import chat_pb2 as pb


def message(m: Message, for_everyone: bool = False) -> pb.MessageResponse:
    """`for_everyone`: an event shared by all recipients, so no per-caller `mine` flags."""
    out = pb.MessageResponse(
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
        reply_to_id=m.reply_to_id,
        edited_at_ms=m.edited_at_ms,
        deleted=m.deleted,
        update_seq=m.update_seq,
        thread_parent_id=m.thread_parent_id,
        also_in_group=m.also_in_group,
        reply_count=m.reply_count,
        last_reply_at_ms=m.last_reply_at_ms,
        pinned_by=m.pinned_by,
        pinned_at_ms=m.pinned_at_ms,
        via_backend=m.via_backend,
    )
    # Repeated fields only when there is something to add: most messages have none, and an
    # empty list still costs a conversion per field (this runs for every message of a page).
    if m.mentions:
        out.mentions.extend(
            pb.Mention(user_id=x.user_id, offset=x.offset, length=x.length, all=x.all)
            for x in m.mentions
        )
    if m.reactions:
        out.reactions.extend(
            pb.ReactionCount(emoji=r.emoji, count=r.count, mine=r.mine and not for_everyone)
            for r in m.reactions
        )
    if m.thread_participants:
        out.thread_participant_ids.extend(m.thread_participants)
    if m.reply_quote is not None:
        q = m.reply_quote
        out.reply_quote.CopyFrom(
            pb.MessageQuote(
                id=q.id, user_id=q.user_id, user_name=q.user_name, content=q.content,
                deleted=q.deleted,
            )
        )
    if m.attachment is not None:
        out.attachment.CopyFrom(attachment(m.attachment))
    return out


def attachment(a: AttachmentInfo | Attachment) -> pb.Attachment:
    return pb.Attachment(
        id=a.id,
        file_name=a.file_name,
        content_type=a.content_type,
        size=a.size,
        width=a.width,
        height=a.height,
        sha256=a.sha256,
    )


def upload_status(a: Attachment) -> pb.UploadStatus:
    return pb.UploadStatus(
        upload_id=a.id,
        received_bytes=a.received,
        complete=a.completed,
        attachment=attachment(a) if a.completed else None,
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
        read_seq=g.read_seq,
        unread_count=g.unread_count,
        mention_count=g.mention_count,
        muted=g.muted,
        last_update_seq=g.last_update_seq,
        thread_unread_count=g.thread_unread_count,
        pinned_count=g.pinned_count,
        avatar=g.avatar,
        archived=g.archived,
        direct=g.direct,
        direct_peer=None if g.direct_peer is None else user(g.direct_peer),
    )


def search_hit(h: SearchHit) -> pb.SearchHit:
    return pb.SearchHit(
        message=message(h.message),
        snippet=h.snippet,
        highlights=[pb.Highlight(offset=o, length=n) for o, n in h.highlights],
        rank=h.rank,
    )


def user(u: UserProfile) -> pb.User:
    return pb.User(id=u.id, name=u.name, email=u.email, avatar=u.avatar,
                   custom_json=u.custom_json)


def moderation(a: ModerationAction) -> pb.ModerationAction:
    return pb.ModerationAction(
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
            return pb.ChatEvent(message=message(m, for_everyone=True))
        case MessageUpdated(message=m):
            return pb.ChatEvent(updated=message(m, for_everyone=True))
        case ReceiptMoved(group_id=gid, user_id=uid, read_seq=seq):
            return pb.ChatEvent(receipt=pb.ReceiptEvent(group_id=gid, user_id=uid, read_seq=seq))
        case Mentioned():
            return pb.ChatEvent(
                mention=pb.MentionEvent(
                    group_id=e.group_id,
                    message_id=e.message_id,
                    seq=e.seq,
                    from_user_id=e.from_user_id,
                    user_id=e.user_id,
                )
            )
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
        case ThreadReplied():
            return pb.ChatEvent(
                thread=pb.ThreadEvent(
                    group_id=e.group_id,
                    parent_id=e.parent_id,
                    message_id=e.message_id,
                    seq=e.seq,
                    from_user_id=e.from_user_id,
                    participant_ids=list(e.participant_ids),
                    reply_count=e.reply_count,
                )
            )
        case PinChanged():
            return pb.ChatEvent(
                pin=pb.PinEvent(
                    group_id=e.group_id,
                    message_id=e.message_id,
                    pinned=e.pinned,
                    actor_id=e.actor_id,
                )
            )
        case PresenceChanged(user_id=uid, online=online):
            return pb.ChatEvent(presence=pb.PresenceEvent(user_id=uid, online=online))
        case GroupUpdated(group=g, actor_id=actor):
            # What every member may see alike: no per-member fields (role, unread, peer).
            return pb.ChatEvent(group_updated=pb.GroupUpdatedEvent(
                group_id=g.id, group=group(g.public_card()), actor_id=actor))
        case GroupDeleted(group_id=gid, actor_id=actor):
            return pb.ChatEvent(group_deleted=pb.GroupDeletedEvent(group_id=gid, actor_id=actor))
        case UserUpdated(user=u):
            # E-mail is never broadcast (EXPOSE_MEMBER_EMAILS concerns member lists only).
            return pb.ChatEvent(user_updated=pb.UserUpdatedEvent(user=pb.User(
                id=u.id, name=u.name, avatar=u.avatar, custom_json=u.custom_json)))
        case ModerationRecorded(action=a):
            # Reports and backend-wide actions are addressed to no group's streams (group 0:
            # every pod skips them; the webhook notifier reads them).
            private = a.kind in (ActionKind.REPORT, ActionKind.USER_BAN, ActionKind.USER_UNBAN)
            return pb.ChatEvent(moderation=pb.ModerationEvent(
                group_id=0 if private else a.group_id, action=moderation(a)))
        case AccessRevoked(user_id=uid, reason=reason, until_ms=until):
            return pb.ChatEvent(access_revoked=pb.AccessRevokedEvent(
                user_id=uid, reason=reason, until_ms=until))
    raise TypeError(f"unknown event {e!r}")  # pragma: no cover


def group_of(e: ChatEvent) -> int:
    if isinstance(e, MessagePosted | MessageUpdated):
        return e.message.group_id
    if isinstance(e, PresenceChanged | UserUpdated):
        return 0
    return event(e).moderation.group_id if isinstance(e, ModerationRecorded) else e.group_id
