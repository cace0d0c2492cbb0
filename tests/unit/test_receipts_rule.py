"""Who may read receipts: the membership rule lives in the domain (Receipts.readers), which
asks the membership itself through the GroupAccess port. Stores here are small fakes."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from chat_service.domain.errors import InvalidArgument, NotFound, PermissionDenied
from chat_service.domain.models import ChatEvent, Group, Role, UserProfile
from chat_service.domain.ports import GroupAccess, ReceiptStore
from chat_service.domain.receipts import Receipts

ANN = UserProfile(1, "Ann")
BO = UserProfile(2, "Bo")
OPEN, CLOSED, MISSING = 10, 11, 12
MESSAGE = 100


def _group(group_id: int, invite_only: bool) -> Group:
    return Group(id=group_id, name="g", description="", created_by=1, created_at_ms=0,
                 invite_only=invite_only, last_seq=1, member_count=1)


class FakeGroups:
    """Ann is a member of both groups; OPEN is open, CLOSED invite-only, MISSING absent."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def role_of(self, group_id: int, user_id: int) -> Role:
        self.calls.append("role_of")
        return Role.MEMBER if user_id == ANN.id and group_id in (OPEN, CLOSED) else Role.NONE

    async def get_group(self, group_id: int, viewer_id: int) -> Group | None:
        self.calls.append("get_group")
        if group_id == MISSING:
            return None
        return _group(group_id, invite_only=group_id == CLOSED)


class FakeReceipts:
    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []

    async def mark_read(self, group_id: int, user_id: int, seq: int) -> None:
        return None

    async def mark_unread(self, group_id: int, user_id: int, message_id: int) -> None:
        return None

    async def readers(
        self, group_id: int, message_id: int
    ) -> tuple[list[UserProfile], int] | None:
        self.asked.append((group_id, message_id))
        return ([BO], 0) if message_id == MESSAGE else None

    async def set_muted(self, group_id: int, user_id: int, muted: bool) -> bool:
        return True

    async def private_receipts(self, user_id: int, value: bool | None) -> bool:
        return False


class NoEvents:
    async def publish(self, events: Sequence[ChatEvent]) -> None:
        pass


class CountingRate:
    def __init__(self) -> None:
        self.spent: list[str] = []

    async def check(self, rule: str, *identifiers: int, cost: int = 1) -> None:
        self.spent.append(rule)


Parts = tuple[Receipts, FakeGroups, FakeReceipts, CountingRate]


@pytest.fixture
def parts() -> Parts:
    groups, store, rate = FakeGroups(), FakeReceipts(), CountingRate()
    # The fakes satisfy the ports (checked statically by mypy through these annotations).
    access: GroupAccess = groups
    receipt_store: ReceiptStore = store
    return Receipts(receipt_store, access, NoEvents(), rate), groups, store, rate


async def test_a_member_gets_the_readers(parts: Parts) -> None:
    receipts, groups, store, rate = parts
    assert await receipts.readers(ANN, CLOSED, MESSAGE) == ([BO], 0)
    assert groups.calls == ["role_of"]  # a member costs one membership lookup, no more
    assert rate.spent == ["user_reads"] and store.asked == [(CLOSED, MESSAGE)]


async def test_a_stranger_to_an_open_group_is_denied_after_the_rate_check(parts: Parts) -> None:
    receipts, _, store, rate = parts
    with pytest.raises(PermissionDenied, match=f"not a member of group {OPEN}"):
        await receipts.readers(BO, OPEN, MESSAGE)
    assert rate.spent == ["user_reads"] and store.asked == []


@pytest.mark.parametrize("group_id", [CLOSED, MISSING])
async def test_invite_only_and_missing_groups_look_the_same_to_a_stranger(
    parts: Parts, group_id: int
) -> None:
    receipts, _, store, rate = parts
    with pytest.raises(NotFound, match=f"^group {group_id} not found$"):
        await receipts.readers(BO, group_id, MESSAGE)
    assert rate.spent == [] and store.asked == []


async def test_a_message_outside_the_group_is_not_found(parts: Parts) -> None:
    receipts, *_ = parts
    with pytest.raises(NotFound, match=f"message 5 is not in group {OPEN}"):
        await receipts.readers(ANN, OPEN, 5)


async def test_a_bad_group_id_is_refused_before_any_lookup(parts: Parts) -> None:
    receipts, groups, _, rate = parts
    with pytest.raises(InvalidArgument):
        await receipts.readers(ANN, 0, MESSAGE)
    assert groups.calls == [] and rate.spent == []
