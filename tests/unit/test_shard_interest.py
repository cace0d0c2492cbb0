"""Which shards a pod reads and from where (fanout/interest.py ShardInterest)."""

from __future__ import annotations

from chat_service.fanout.interest import ShardInterest
from chat_service.fanout.stream_keys import StreamKeys, id_after_ms

KEYS = StreamKeys(prefix="t", shards=8)


def test_a_shard_is_read_while_one_of_its_groups_is_followed() -> None:
    interest = ShardInterest(KEYS)
    assert interest.follow(3, "100-0") == 0  # new shard (lane 0)
    assert interest.follow(11, "200-0") is None  # same shard 3
    assert interest.lane_positions(0) == {"t:3": "100-0"}
    interest.unfollow(3)
    assert interest.lane_positions(0) == {"t:3": "100-0"}
    interest.unfollow(11)
    assert interest.lane_positions(0) == {}
    assert interest.shard_count == 0


def test_follows_are_counted_per_group() -> None:
    interest = ShardInterest(KEYS)
    interest.follow(5, "1-0")
    interest.follow(5, "2-0")
    interest.unfollow(5)
    assert interest.following(5)
    interest.unfollow(5)
    assert not interest.following(5)
    interest.unfollow(5)  # one too many: ignored
    assert interest.shard_count == 0


def test_a_new_shard_starts_at_the_earliest_since_until_a_read_answers() -> None:
    interest = ShardInterest(KEYS)
    interest.follow(1, "500-0")
    interest.follow(9, "300-0")  # same shard, not read yet: start early enough for both
    assert interest.positions["t:1"] == "300-0"
    interest.read_answered(["t:1"])
    interest.follow(17, "100-0")  # the reader is past it: never go back for the others
    assert interest.positions["t:1"] == "300-0"


def test_a_dropped_shard_forgets_its_position_and_ignores_late_replies() -> None:
    interest = ShardInterest(KEYS)
    interest.follow(2, "10-0")
    interest.advance("t:2", "20-0")
    interest.unfollow(2)
    interest.advance("t:2", "30-0")  # a read in flight answered after the drop
    assert "t:2" not in interest.positions
    interest.follow(2, "40-0")
    assert interest.positions["t:2"] == "40-0"


def test_cluster_lanes_put_a_lanes_keys_in_one_slot() -> None:
    keys = StreamKeys(prefix="chat:events", shards=32, lanes=4)
    lane1 = keys.lane_shard_keys(1)
    assert len(lane1) == 8 and all(k.startswith("{chat:events:1}:") for k in lane1)
    assert keys.group_key(5) == "{chat:events:1}:5"
    assert keys.broadcast_key.startswith("{chat:events:0}")
    assert keys.wake_key(3, "x").startswith("{chat:events:3}")
    interest = ShardInterest(keys)
    assert interest.follow(5, "1-0") == 1
    assert interest.lane_positions(1) == {"{chat:events:1}:5": "1-0"}
    assert interest.lane_positions(0) == {}


def test_a_position_in_milliseconds_covers_every_entry_of_that_millisecond() -> None:
    assert id_after_ms(1000) == f"999-{2**64 - 1}"
    assert id_after_ms(0) == "0-0"
