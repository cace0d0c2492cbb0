"""Who may see a group: the rule every use case applies to a caller who is not a member.

An invite-only group is answered exactly like a missing one (same status, same message), so
outsiders cannot probe which groups exist; an open group shows non-members its public card.
"""

from __future__ import annotations

from chat_service.domain.errors import NotFound
from chat_service.domain.models import Role
from chat_service.domain.ports import GroupAccess, GroupLookup


def group_not_found(group_id: int) -> NotFound:
    """What a non-member hears about a missing or invite-only group."""
    return NotFound(f"group {group_id} not found")


async def require_visible(groups: GroupLookup, group_id: int) -> None:
    """For a caller who is not a member: NotFound unless the group exists and is open."""
    group = await groups.get_group(group_id, 0)
    if group is None or group.invite_only:
        raise group_not_found(group_id)


async def visible_role(access: GroupAccess, group_id: int, user_id: int) -> Role:
    """The user's role; NotFound when they are not a member of a group that is missing or
    invite-only (so Role.NONE only for open groups)."""
    role = await access.role_of(group_id, user_id)
    if role == Role.NONE:
        await require_visible(access, group_id)
    return role
