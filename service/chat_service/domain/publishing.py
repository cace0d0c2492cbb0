"""Publishing events after a commit, shared by the use cases: a failure is logged, never
raised (the change is stored; every pod's sweep and resuming clients catch up from storage)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from chat_service.domain.models import (
    ChatEvent,
    MemberChange,
    MembershipChanged,
    MembershipResult,
    MessagePosted,
    Role,
    UserProfile,
)
from chat_service.domain.ports import EventPublisher

log = logging.getLogger(__name__)


async def publish_quietly(events: EventPublisher, batch: Sequence[ChatEvent]) -> None:
    try:
        await events.publish(batch)
    except Exception:
        log.warning("publishing events failed; subscribers will catch up from storage",
                    exc_info=True)


def membership_events(
    result: MembershipResult, change: MemberChange, user: UserProfile, actor_id: int,
    role: Role = Role.MEMBER,
) -> list[ChatEvent]:
    """The MemberEvent of a stored membership change, then its SYSTEM message."""
    if not result.changed or result.message is None:
        return []
    m = result.message
    return [
        MembershipChanged(group_id=m.group_id, change=change, user=user, actor_id=actor_id,
                          seq=m.seq, role=role),
        MessagePosted(m),
    ]
