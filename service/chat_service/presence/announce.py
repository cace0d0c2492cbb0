"""Telling a user's groups that they came online or went offline: one PresenceChanged event
through the event fan-out, to the groups given or, when none are, to the user's groups as
storage says now. Best effort: presence must never fail a stream, so errors are logged."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from chat_service.domain.models import PresenceChanged
from chat_service.domain.ports import EventPublisher, GroupsOf

log = logging.getLogger(__name__)

# (user id, online, their groups or None to look them up)
Change = tuple[int, bool, Sequence[int] | None]


async def announce(
    events: EventPublisher,
    groups_of: GroupsOf,
    user_id: int,
    online: bool,
    group_ids: Sequence[int] | None = None,
) -> None:
    await announce_all(events, groups_of, [(user_id, online, group_ids)])


async def announce_all(
    events: EventPublisher, groups_of: GroupsOf, changes: Sequence[Change]
) -> None:
    """Several users' changes in one publish (one event each, in the order given); a user
    whose groups cannot be looked up is logged and left out, the others are announced."""
    out: list[PresenceChanged] = []
    for user_id, online, group_ids in changes:
        try:
            groups = await groups_of(user_id) if group_ids is None else group_ids
        except Exception:
            log.warning("could not announce presence of user %s", user_id, exc_info=True)
            continue
        out.append(PresenceChanged(user_id=user_id, online=online, group_ids=tuple(groups)))
    if not out:
        return
    try:
        await events.publish(out)
    except Exception:
        log.warning("could not announce presence of users %s", [e.user_id for e in out],
                    exc_info=True)
