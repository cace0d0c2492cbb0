"""Who may administer a group: its owners/admins (per the role table) or the app's backend.

An `Actor` is the calling user, or None for the app's backend (ChatBackend), which acts on any
group without being a member and outranks every role.
"""

from __future__ import annotations

from chat_service.domain.access import group_not_found, visible_role
from chat_service.domain.errors import PermissionDenied
from chat_service.domain.models import BACKEND_ACTOR, Role, UserProfile
from chat_service.domain.ports import GroupAccess

Actor = UserProfile | None


def actor_id(actor: Actor) -> int:
    return 0 if actor is None else actor.id


def actor_profile(actor: Actor) -> UserProfile:
    return BACKEND_ACTOR if actor is None else actor


async def managing_role(access: GroupAccess, group_id: int, actor: Actor, what: str) -> Role:
    """The actor's role when they may manage the group (owner/admin; the backend counts as
    owner), else PermissionDenied; NotFound for a missing group, or an invisible one to a
    non-member."""
    if actor is None:
        if await access.get_group(group_id, 0) is None:
            raise group_not_found(group_id)
        return Role.OWNER
    role = await visible_role(access, group_id, actor.id)
    if role == Role.NONE:
        raise PermissionDenied(f"you are not a member of group {group_id}")
    if not role.manages_members:
        raise PermissionDenied(f"only owners and admins can {what}")
    return role


def outranks(actor: Actor, actor_role: Role, target_role: Role) -> bool:
    """The backend outranks everyone; a user only roles below their own."""
    return actor is None or target_role < actor_role
