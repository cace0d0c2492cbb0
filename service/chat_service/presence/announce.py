"""Telling a user's groups that they came online or went offline: one PresenceChanged event
through the event fan-out, to the groups given or, when none are, to the user's groups as
storage says now. Best effort: presence must never fail a stream, so errors are logged."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from chat_service.domain.models import PresenceChanged
from chat_service.domain.ports import EventPublisher, GroupsOf

log = logging.getLogger(__name__)


async def announce(
    events: EventPublisher,
    groups_of: GroupsOf,
    user_id: int,
    online: bool,
    group_ids: Sequence[int] | None = None,
) -> None:
    try:
        groups = await groups_of(user_id) if group_ids is None else group_ids
        await events.publish(
            [PresenceChanged(user_id=user_id, online=online, group_ids=tuple(groups))]
        )
    except Exception:
        log.warning("could not announce presence of user %s", user_id, exc_info=True)
