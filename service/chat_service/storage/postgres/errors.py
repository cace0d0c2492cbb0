"""asyncpg failures translated into domain errors.

"The database is unreachable" becomes a domain Unavailable, which the API answers with a
status the client may retry. Other errors (constraint violations a store expects) are handled
where they happen, next to the statement that can raise them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import asyncpg

from chat_service.domain.errors import Unavailable

P = ParamSpec("P")
T = TypeVar("T")

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    TimeoutError,
)


def storage_errors(
    fn: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn 'database unreachable' into a domain Unavailable the client may retry."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except CONNECTION_ERRORS as exc:
            raise Unavailable("the message store is unreachable; retry shortly") from exc

    return wrapper
