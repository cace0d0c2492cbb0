"""Admission control refuses work early, with a retry hint, when the pod is overloaded."""

from __future__ import annotations

import pytest

from chat_service.api.admission import Admission
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
