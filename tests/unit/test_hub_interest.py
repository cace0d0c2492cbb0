"""The hub tells the broker which groups this pod follows, and handles join notices: a user
connected here who joins a group nobody here follows gets the join, then the group's messages,
once each (pure logic, a recording broker and a storage stand-in)."""

from __future__ import annotations

import asyncio

from chat_service.domain.models import MemberChange, MembershipChanged, MessagePosted, UserProfile
from chat_service.fanout.subscriber import Subscriber
from chat_service.wire import convert
from tests.unit.test_hub import Store, make_hub


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []

    async def position(self) -> str:
        return "42-0"

    def follow(self, group_id: int, since: str = "") -> None:
        self.calls.append(("follow", group_id, since))

    def unfollow(self, group_id: int) -> None:
        self.calls.append(("unfollow", group_id, ""))


def joined(group: int, user: int, seq: int) -> bytes:
    event = MembershipChanged(group, MemberChange.JOINED, UserProfile(user), 1, seq)
    return convert.event(event).SerializeToString()


def kinds(sub: Subscriber) -> list[tuple[str, int]]:
    return [(d.kind, d.seq or d.event.member.seq) for d in sub.drain(1000)]


async def test_a_group_is_followed_with_its_first_subscriber_and_dropped_with_its_last() -> None:
    hub, broker = make_hub(Store()), Recorder()
    hub.set_interest(broker)
    a, b = Subscriber(1, 100), Subscriber(2, 100)
    since = await hub.position()
    hub.add(a, ())
    hub.add(b, ())
    hub.attach(a, 7, since)
    hub.attach(b, 7, since)
    hub.remove(a)
    assert broker.calls == [("follow", 7, "42-0")]
    hub.remove(b)
    assert broker.calls[-1] == ("unfollow", 7, "")


async def test_a_join_notice_makes_the_pod_follow_and_deliver_the_join_once() -> None:
    store = Store()
    store.members[5] = [1]
    store.commit(5, 3)  # seq 3 is the join's SYSTEM message
    hub, broker = make_hub(store), Recorder()
    hub.set_interest(broker)
    sub = Subscriber(1, 100)
    hub.add(sub, ())  # connected here, in no group this pod follows
    payload = joined(5, 1, 3)
    hub.on_payloads([(0, payload)])  # the notice, read by every pod
    assert broker.calls == [("follow", 5, "")]
    # the group's own copy, when the shard read starts early enough to include it
    hub.on_payloads([(5, payload)])
    await asyncio.sleep(0.05)  # the join's SYSTEM message is read back from storage
    assert kinds(sub) == [("member", 3), ("message", 3)]
    store.commit(5)
    posted = convert.event(MessagePosted(store.messages[5][-1])).SerializeToString()
    hub.on_payloads([(5, posted)])
    assert kinds(sub) == [("message", 4)]


async def test_a_notice_for_a_group_already_followed_or_a_user_not_here_is_ignored() -> None:
    hub, broker = make_hub(Store()), Recorder()
    hub.set_interest(broker)
    here = Subscriber(1, 100)
    hub.add(here, ())
    other = Subscriber(9, 100)
    hub.add(other, ())
    hub.attach(other, 6)
    hub.on_payloads([(0, joined(6, 1, 2))])  # group followed: its own copy will come
    hub.on_payloads([(0, joined(8, 77, 2))])  # nobody of user 77 here
    assert broker.calls == [("follow", 6, "")]
    assert hub.by_user[1] == {here} and 6 not in here.groups
