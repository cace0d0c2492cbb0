"""Give freed heap memory back to the operating system.

After a burst (a flood of refused calls, a reconnect storm) glibc keeps the freed memory of
grpc-core's threads and of Python in its arenas, so the pod's RSS stays at the burst's peak
for minutes although nothing uses it. `malloc_trim(0)` returns the free pages; it takes well
under a millisecond when there is little to return. No-op where libc has no malloc_trim
(musl, macOS)."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


def _load_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _load_trim()


def release_free_memory() -> bool:
    """True when memory was returned to the system."""
    return bool(_TRIM(0)) if _TRIM is not None else False
