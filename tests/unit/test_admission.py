"""Admission control refuses work early, with a retry hint, when the pod is overloaded."""

from __future__ import annotations

import pytest

from chat_service.api.admission import Admission, queued_for
from chat_service.domain.errors import ResourceExhausted


def test_calls_beyond_the_inflight_cap_are_refused_until_one_finishes() -> None:
    gate = Admission(max_inflight=2, max_lag=0)
    gate.admit()
    gate.admit()
    with pytest.raises(ResourceExhausted) as refused:
        gate.admit()
    assert refused.value.retry_after is not None and refused.value.retry_after > 0
    gate.release()
    gate.admit()
    assert gate.inflight == 2


def test_a_lagging_event_loop_sheds_new_calls_with_a_hint_that_grows_with_the_lag() -> None:
    gate = Admission(max_inflight=0, max_lag=0.1)
    gate.observe_lag(0.3)
    gate.admit()  # one late timer is a hiccup, not overload
    gate.release()
    gate.observe_lag(0.4)
    with pytest.raises(ResourceExhausted) as refused:
        gate.admit()
    assert refused.value.retry_after == pytest.approx(0.8)
    assert "400 ms" in str(refused.value)
    gate.observe_lag(0.01)  # caught up: accept again
    gate.admit()


def test_zero_limits_turn_admission_control_off() -> None:
    gate = Admission(max_inflight=0, max_lag=0)
    for _ in range(3):
        gate.observe_lag(5.0)
    for _ in range(10_000):
        gate.admit()
    assert gate.inflight == 10_000


def test_a_call_that_queued_too_long_is_refused_with_a_hint_of_its_wait() -> None:
    gate = Admission(max_inflight=0, max_lag=0, max_queue=0.25)
    gate.admit(queued=0.1)
    gate.admit(queued=None)  # not behind the proxy: no queue signal
    with pytest.raises(ResourceExhausted) as refused:
        gate.admit(queued=0.6)
    assert refused.value.retry_after == pytest.approx(0.6)
    assert gate.inflight == 2


def test_the_queue_time_is_read_from_the_proxys_request_start_header() -> None:
    now = 1_700_000_000.0
    assert queued_for([("x-request-start", "t=1699999999750")], now) == pytest.approx(0.25)
    assert queued_for([("x-request-start", b"1699999999000")], now) == pytest.approx(1.0)
    assert queued_for([("x-request-start", "t=1700000000500")], now) == 0.0  # clock skew
    assert queued_for([("x-request-start", "yesterday")], now) is None
    assert queued_for([("authorization", "Bearer x")], now) is None


def test_one_user_cannot_take_the_whole_pod_budget() -> None:
    gate = Admission(max_inflight=10, max_lag=0, max_per_user=2)
    gate.admit(user_id=7)
    gate.admit(user_id=7)
    with pytest.raises(ResourceExhausted) as refused:
        gate.admit(user_id=7)
    assert "your calls" in str(refused.value)
    gate.admit(user_id=8)  # another user still gets in
    gate.release(7)
    gate.admit(user_id=7)
    assert gate.inflight == 3
    for uid in (7, 7, 8):
        gate.release(uid)
    assert gate.inflight == 0 and gate.by_user == {}
