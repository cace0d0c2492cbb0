"""Typers of one group: each until their state expires; every change carries the whole set."""

from __future__ import annotations

from chat_service.fanout.typing_state import Typers


def test_a_refresh_changes_nothing_for_subscribers_and_a_stop_is_announced() -> None:
    typers = Typers(group_id=5)
    first = typers.update(1, True, now=0.0, ttl=6.0)
    assert first is not None and list(first.event.typing.typing_user_ids) == [1]
    assert typers.update(1, True, now=2.0, ttl=6.0) is None  # refresh
    second = typers.update(2, True, now=3.0, ttl=6.0)
    assert second is not None and list(second.event.typing.typing_user_ids) == [1, 2]
    stop = typers.update(1, False, now=4.0, ttl=6.0)
    assert stop is not None
    assert (stop.event.typing.user_id, stop.event.typing.is_typing) == (1, False)
    assert list(stop.event.typing.typing_user_ids) == [2]


def test_typers_who_stop_refreshing_expire_by_themselves() -> None:
    typers = Typers(group_id=5)
    typers.update(1, True, now=0.0, ttl=6.0)
    typers.update(2, True, now=4.0, ttl=6.0)
    assert typers.expire(now=5.0) == []
    (gone,) = typers.expire(now=8.0)  # 1 expired at 6.0; 2 lasts until 10.0
    assert gone.event.typing.user_id == 1 and not gone.event.typing.is_typing
    assert list(gone.event.typing.typing_user_ids) == [2]
    assert typers and not [e for e in typers.expire(now=9.0)]
    assert len(typers.expire(now=10.0)) == 1 and not typers
