"""The words of the SYSTEM messages the stores write with a change (group created, member
added, left, removed): one wording for every store."""

from __future__ import annotations

from chat_service.domain.models import UserProfile


def display(name: str, user_id: int) -> str:
    """How system messages name a user: their display name, else 'user N'."""
    return name or f"user {user_id}"


def group_created(creator: UserProfile, group_name: str) -> str:
    return f'{display(creator.name, creator.id)} created "{group_name}"'


def membership_changed(
    name: str, user_id: int, actor: UserProfile, by_self: bool, verbs: tuple[str, str]
) -> str:
    """`verbs`: what the user did alone ("joined") and what the actor did to them ("added")."""
    alone, done_by_actor = verbs
    who = display(name, user_id)
    return f"{who} {alone}" if by_self else f"{display(actor.name, actor.id)} {done_by_actor} {who}"


# The name an anonymised (deleted or erased) user shows under.
DELETED_USER = "Deleted user"



def direct_started(creator: UserProfile) -> str:
    return f"{display(creator.name, creator.id)} started the conversation"
