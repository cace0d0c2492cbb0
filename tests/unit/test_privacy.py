"""Member e-mails leave the service only when the operator enables it."""

from __future__ import annotations

from chat_service.domain.models import Member, Role, UserProfile
from chat_service.domain.privacy import PRIVATE, Privacy

ALICE = UserProfile(id=1, name="Alice", email="alice@example.com", avatar="https://a/x.png")


def test_by_default_nobody_sees_an_address_and_the_rest_of_the_profile_is_kept() -> None:
    shown = PRIVATE.user(ALICE)
    assert shown.email == ""
    assert (shown.id, shown.name, shown.avatar) == (1, "Alice", "https://a/x.png")
    member = PRIVATE.member(Member(user=ALICE, role=Role.ADMIN, joined_at_ms=5))
    assert member.user.email == "" and member.role == Role.ADMIN and member.joined_at_ms == 5


def test_enabled_addresses_are_shown() -> None:
    assert Privacy(expose_member_emails=True).user(ALICE).email == "alice@example.com"
