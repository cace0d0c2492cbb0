"""The words of SYSTEM messages, the same whichever store writes them."""

from __future__ import annotations

from chat_service.domain.models import UserProfile
from chat_service.domain.system_text import display, group_created, membership_changed

ANN = UserProfile(id=1, name="Ann")


def test_a_user_without_a_name_is_named_by_id_in_system_messages() -> None:
    assert display("", 42) == "user 42"
    assert display("Ann", 42) == "Ann"


def test_a_change_made_by_the_user_or_by_someone_else() -> None:
    verbs = ("joined", "added")
    assert membership_changed("Bob", 2, UserProfile(id=2, name="Bob"), True, verbs) == (
        "Bob joined"
    )
    assert membership_changed("", 2, ANN, False, verbs) == "Ann added user 2"
    assert group_created(UserProfile(id=7), "general") == 'user 7 created "general"'
