"""Rate limits shared by every pod (Redis) or by one process (memory), via `limits`.

A limited caller gets RESOURCE_EXHAUSTED naming the limit and when to retry. If Redis is
unreachable the limiter fails open: chat keeps working, unprotected, and the error is counted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields
from typing import Any

import redis.asyncio as aioredis
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from chat_service.domain.errors import ResourceExhausted
from chat_service.envconfig import ConfigError, var
from chat_service.telemetry import metrics

log = logging.getLogger(__name__)


def _rate(name: str, raw: str, default: object) -> str:
    """A rate in `limits` notation ("20/5 seconds", "100 per minute"); "off" disables it."""
    raw = raw.strip()
    if raw.lower() in {"", "off", "none", "0"}:
        return ""
    try:
        parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must look like '20/5 seconds', got {raw!r}") from exc
    return raw


def _rule(env: str, default: str, what: str) -> Any:
    return var(env, default, _rate, what=what)


@dataclass(frozen=True)
class RateRules:
    """Limits in `limits` notation, e.g. "20/5 seconds"; an empty string disables one. The
    field names are the rule names that `RateLimiter.check` takes."""

    user_send: str = _rule("RATE_LIMIT_USER_SEND", "20/5 seconds", "send rate limit per user")
    group_send: str = _rule(
        "RATE_LIMIT_GROUP_SEND", "200/5 seconds", "send rate limit per group"
    )
    user_groups_created: str = _rule(
        "RATE_LIMIT_GROUPS_CREATED", "30/hour", "group creation limit per user"
    )
    user_typing: str = _rule(
        "RATE_LIMIT_TYPING", "30/10 seconds", "typing indicator limit per user"
    )
    user_edit: str = _rule("RATE_LIMIT_EDITS", "20/10 seconds", "edit limit per user")
    user_delete: str = _rule("RATE_LIMIT_DELETES", "30/10 seconds", "delete limit per user")
    user_react: str = _rule("RATE_LIMIT_REACTIONS", "30/10 seconds", "reaction limit per user")
    user_mark_read: str = _rule(
        "RATE_LIMIT_MARK_READ", "60/10 seconds", "mark-read limit per user"
    )
    user_pin: str = _rule("RATE_LIMIT_PINS", "20/10 seconds", "pin/unpin limit per user")
    user_search: str = _rule(
        "RATE_LIMIT_SEARCH", "30/10 seconds", "search limit per user"
    )
    # Cost-weighted: a history, thread or mentions page costs 1 per 50 messages asked for,
    # any other read (member list, group list, pins, read receipts) costs 1.
    user_reads: str = _rule(
        "RATE_LIMIT_READS", "120/10 seconds", "read limit per user ({}; a history page costs 1 "
        "per 50 messages)"
    )


class RateLimiter:
    def __init__(self, storage: Storage, rules: RateRules) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._rules: dict[str, RateLimitItem | None] = {}
        self._texts: dict[str, str] = {}
        for f in fields(RateRules):
            value: str = getattr(rules, f.name)
            self._rules[f.name] = parse(value) if value else None
            what: str = f.metadata["what"]
            self._texts[f.name] = what.format(value) if "{}" in what else f"{what} ({value})"

    @classmethod
    def redis(cls, client: aioredis.Redis, rules: RateRules) -> RateLimiter:
        """Counters in Redis, through the connection pool of `client` (the service's one
        Redis client): `limits` builds its own redis-py client over a given pool, so no
        connection of its own is opened. The URI only names the implementation."""
        storage = RedisStorage(
            "async+redis://", implementation="redispy", key_prefix="chat:rl",
            connection_pool=client.connection_pool,  # type: ignore[arg-type]
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
