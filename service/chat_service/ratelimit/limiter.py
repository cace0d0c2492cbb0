"""Rate limits shared by every pod (Redis) or by one process (memory), via `limits`.

A limited caller gets RESOURCE_EXHAUSTED naming the limit and when to retry. If Redis is
unreachable the limiter fails open: chat keeps working, unprotected, and the error is counted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from chat_service.domain.errors import ResourceExhausted
from chat_service.telemetry import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateRules:
    """Limits in `limits` notation, e.g. "20/5 seconds"; an empty string disables one."""

    user_send: str = "20/5 seconds"
    group_send: str = "200/5 seconds"
    user_groups_created: str = "30/hour"
    user_typing: str = "30/10 seconds"
    user_edit: str = "20/10 seconds"
    user_delete: str = "30/10 seconds"
    user_react: str = "30/10 seconds"
    user_mark_read: str = "60/10 seconds"
    # Cost-weighted: a history or mentions page costs 1 per 50 messages asked for, any other
    # read (member list, group list, read receipts) costs 1.
    user_reads: str = "120/10 seconds"


class RateLimiter:
    def __init__(self, storage: Storage, rules: RateRules) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._rules: dict[str, RateLimitItem | None] = {
            name: parse(value) if value else None
            for name, value in (
                ("user_send", rules.user_send),
                ("group_send", rules.group_send),
                ("user_groups_created", rules.user_groups_created),
                ("user_typing", rules.user_typing),
                ("user_edit", rules.user_edit),
                ("user_delete", rules.user_delete),
                ("user_react", rules.user_react),
                ("user_mark_read", rules.user_mark_read),
                ("user_reads", rules.user_reads),
            )
        }
        self._texts = {
            "user_send": f"send rate limit per user ({rules.user_send})",
            "group_send": f"send rate limit per group ({rules.group_send})",
            "user_groups_created": f"group creation limit per user ({rules.user_groups_created})",
            "user_typing": f"typing indicator limit per user ({rules.user_typing})",
            "user_edit": f"edit limit per user ({rules.user_edit})",
            "user_delete": f"delete limit per user ({rules.user_delete})",
            "user_react": f"reaction limit per user ({rules.user_react})",
            "user_mark_read": f"mark-read limit per user ({rules.user_mark_read})",
            "user_reads": f"read limit per user ({rules.user_reads}; a history page costs 1 "
            "per 50 messages)",
        }

    @classmethod
    def redis(cls, host: str, port: int, password: str, rules: RateRules) -> RateLimiter:
        auth = f":{password}@" if password else ""
        storage = RedisStorage(
            f"async+redis://{auth}{host}:{port}", implementation="redispy",
            key_prefix="chat:rl", socket_timeout=1.0, socket_connect_timeout=1.0,
        )
        return cls(storage, rules)

    @classmethod
    def memory(cls, rules: RateRules) -> RateLimiter:
        return cls(MemoryStorage(), rules)

    async def check(self, rule: str, *identifiers: int, cost: int = 1) -> None:
        """`cost` > 1 spends that many units of the budget at once (cost-weighted rules)."""
        item = self._rules[rule]
        if item is None:
            return
        cost = max(1, min(cost, item.amount))  # a call costing more than the budget still fits
        keys = [rule, *(str(i) for i in identifiers)]
        try:
            allowed = await self._limiter.hit(item, *keys, cost=cost)
            if allowed:
                return
            stats = await self._limiter.get_window_stats(item, *keys)
            retry = max(0.0, stats.reset_time - time.time())
        except Exception:  # storage down: fail open, never block chat on the limiter
            metrics.REDIS_ERRORS.labels("ratelimit").inc()
            log.warning("rate limiter unavailable; allowing the call", exc_info=True)
            return
        metrics.RATE_LIMITED.labels(rule).inc()
        raise ResourceExhausted(
            f"{self._texts[rule]} reached; retry in {retry:.1f} s", retry_after=retry
        )
