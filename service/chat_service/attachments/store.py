"""Where the bytes of attachments live, behind one small interface.

A blob is written as parts at increasing offsets (one part per uploaded chunk) and read back
in order. Stores are stateless clients (PostgreSQL, S3): any pod can continue an upload.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Protocol


class BlobCorrupt(Exception):
    """The stored parts do not add up to the expected bytes (missing, overlapping, deleted)."""


class BlobStore(Protocol):
    @property
    def name(self) -> str:
        """Recorded in attachments.store: which store holds an attachment's bytes."""
        ...

    async def write(self, blob_id: str, offset: int, data: bytes) -> None:
        """Store one part; writing the same offset again replaces it."""
        ...

    def read(self, blob_id: str, size: int) -> AsyncGenerator[bytes, None]:
        """Exactly `size` bytes in order, in pieces; BlobCorrupt when the parts don't fit."""
        ...

    async def delete(self, blob_id: str) -> None:
        """Remove every part (no error when there is none)."""
        ...

    async def close(self) -> None: ...


async def contiguous(
    parts: AsyncGenerator[tuple[int, bytes], None], size: int
) -> AsyncGenerator[bytes, None]:
    """Check that (offset, data) parts sorted by offset cover 0..size exactly once."""
    expected = 0
    async with contextlib.aclosing(parts):
        async for offset, data in parts:
            if offset != expected or expected + len(data) > size:
                raise BlobCorrupt(f"stored part at offset {offset} does not follow {expected}")
            expected += len(data)
            yield data
    if expected != size:
        raise BlobCorrupt(f"stored parts end at {expected} of {size} bytes")
