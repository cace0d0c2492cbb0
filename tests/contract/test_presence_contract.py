"""The Presence port (domain/ports.py), one body over the memory and the Redis twin.

Each twin publishes through EventFanout over the broker it is deployed with, so these tests
see what members' streams would see: PresenceEvents addressed to the user's groups.
"""

from __future__ import annotations

import asyncio

from tests.contract.conftest import PresenceRig
from tests.contract.twins import new_user_id


async def test_a_connected_user_is_online_and_announced_to_the_groups_given(
    presence: PresenceRig,
) -> None:
    alice, bob = new_user_id(), new_user_id()
    await presence.presence.connected(alice, [11, 12])
    assert await presence.presence.online_users([alice, bob]) == {alice}
    assert await presence.until_announced(11, 1) == [(alice, True)]
    assert await presence.until_announced(12, 1) == [(alice, True)]
    assert presence.lookups == []  # the groups given were used, not looked up


async def test_the_last_disconnect_takes_the_user_offline_announced_to_their_groups(
    presence: PresenceRig,
) -> None:
    alice = new_user_id()
    presence.groups[alice] = [21, 22]
    await presence.presence.connected(alice, [21, 22])
    await presence.presence.disconnected(alice)
    assert await presence.presence.online_users([alice]) == set()
    assert await presence.until_announced(21, 2) == [(alice, True), (alice, False)]
    assert await presence.until_announced(22, 2) == [(alice, True), (alice, False)]


async def test_without_group_ids_the_users_groups_are_looked_up(presence: PresenceRig) -> None:
    alice = new_user_id()
    presence.groups[alice] = [31, 32]
    await presence.presence.connected(alice)
    assert await presence.until_announced(31, 1) == [(alice, True)]
    assert await presence.until_announced(32, 1) == [(alice, True)]
    assert presence.lookups == [alice]


async def test_only_the_first_connect_and_the_last_disconnect_are_announced(
    presence: PresenceRig,
) -> None:
    """Two streams of one user: closing one leaves them online and says nothing."""
    alice = new_user_id()
    presence.groups[alice] = [41]
    await presence.presence.connected(alice, [41])
    await presence.presence.connected(alice, [41])
    await presence.presence.disconnected(alice)
    assert await presence.presence.online_users([alice]) == {alice}
    await presence.presence.disconnected(alice)
    assert await presence.presence.online_users([alice]) == set()
    # Per-group order makes the last event a barrier: nothing else was announced before it.
    assert await presence.until_announced(41, 2) == [(alice, True), (alice, False)]


async def test_online_users_answers_only_for_the_ids_asked(presence: PresenceRig) -> None:
    alice, bob, carol = new_user_id(), new_user_id(), new_user_id()
    await presence.presence.connected(alice, [51])
    await presence.presence.connected(bob, [51])
    assert await presence.presence.online_users([]) == set()
    assert await presence.presence.online_users([carol]) == set()
    assert await presence.presence.online_users([bob, carol]) == {bob}


async def test_stop_takes_this_processes_users_offline_and_says_so(
    presence: PresenceRig,
) -> None:
    alice, bob = new_user_id(), new_user_id()
    presence.groups[alice] = presence.groups[bob] = [61]
    await presence.presence.connected(alice, [61])
    await presence.presence.connected(alice, [61])  # two streams: stop ends both
    await presence.presence.connected(bob, [61])
    await presence.presence.stop()
    assert await presence.presence.online_users([alice, bob]) == set()
    events = await presence.until_announced(61, 4)
    assert events[:2] == [(alice, True), (bob, True)]
    assert sorted(events[2:]) == [(alice, False), (bob, False)]


async def test_a_failed_group_lookup_is_not_the_connecting_streams_problem(
    presence: PresenceRig,
) -> None:
    """Presence is best effort: the stream that connected is not failed by it, and the user
    is online all the same (nobody could be told)."""
    alice, bob = new_user_id(), new_user_id()
    # The lookup for alice raises (no entry in `groups`); bob's announcement is the barrier.
    await presence.presence.connected(alice)
    assert await presence.presence.online_users([alice]) == {alice}
    await presence.presence.connected(bob, [71])
    assert await presence.until_announced(71, 1) == [(bob, True)]
    assert presence.lookups == [alice]


async def test_a_connect_cancelled_midway_then_disconnected_leaves_the_user_offline(
    presence: PresenceRig,
) -> None:
    """A stream cancelled while its user is being marked online still ends with
    `disconnected` (connected counts it before its first await): the user ends offline,
    whatever of the interrupted connect was still to run."""
    alice = new_user_id()
    presence.groups[alice] = [81]
    connecting = asyncio.create_task(presence.presence.connected(alice, [81]))
    await asyncio.sleep(0)  # counted; its mark not sent yet
    connecting.cancel()
    await presence.presence.disconnected(alice)
    await asyncio.sleep(0.2)  # whatever the interrupted connect had queued has run
    assert await presence.presence.online_users([alice]) == set()


async def test_many_users_connecting_at_once_are_each_online_and_announced_once(
    presence: PresenceRig,
) -> None:
    users = [new_user_id() for _ in range(40)]
    await asyncio.gather(*(presence.presence.connected(u, [91]) for u in users))
    assert await presence.presence.online_users(users) == set(users)
    events = await presence.until_announced(91, len(users))
    assert sorted(events) == sorted((u, True) for u in users)
