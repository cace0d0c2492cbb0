"""Keyed statements batched over the callers of one moment (storage/postgres/lookup_batcher.py):
calls that arrive while a batch is out go in the next one, never into the one already sent;
a failure reaches only its own batch's callers; a cancelled caller leaves the batch running
(pure asyncio, no servers)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from chat_service.storage.postgres.lookup_batcher import LookupBatcher


class Store:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_next = False

    async def run(self, keys: Sequence[int]) -> dict[int, str]:
        self.batches.append(list(keys))
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("database went away")
        return {k: f"v{k}" for k in keys if k != 404}


async def test_the_calls_of_one_moment_go_in_one_batch_with_each_key_once() -> None:
    store = Store()
    store.release.set()
    lookup = LookupBatcher(store.run, lambda: "none")
    results = await asyncio.gather(lookup(1), lookup(2), lookup(1), lookup(404))
    assert list(results) == ["v1", "v2", "v1", "none"]
    assert store.batches == [[1, 2, 404]]


async def test_a_call_made_while_a_batch_is_out_waits_for_the_next_one() -> None:
    store = Store()
    lookup = LookupBatcher(store.run, lambda: "none")
    first = asyncio.ensure_future(lookup(1))
    await asyncio.sleep(0.01)  # the first batch is out, waiting on the store
    later = [asyncio.ensure_future(lookup(k)) for k in (1, 2, 3)]
    await asyncio.sleep(0.01)
    assert store.batches == [[1]]  # key 1 again does not ride on the batch already sent
    store.release.set()
    assert await first == "v1"
    assert await asyncio.gather(*later) == ["v1", "v2", "v3"]
    assert store.batches == [[1], [1, 2, 3]]


async def test_a_failed_batch_fails_its_own_callers_only() -> None:
    store = Store()
    store.fail_next = True
    lookup = LookupBatcher(store.run, lambda: "none")
    doomed = asyncio.ensure_future(lookup(1))
    await asyncio.sleep(0.01)
    next_one = asyncio.ensure_future(lookup(2))
    store.release.set()
    with pytest.raises(RuntimeError, match="went away"):
        await doomed
    assert await next_one == "v2"


async def test_a_cancelled_caller_leaves_the_batch_to_the_others() -> None:
    store = Store()
    lookup = LookupBatcher(store.run, lambda: "none")
    gone = asyncio.ensure_future(lookup(1))
    stays = asyncio.ensure_future(lookup(2))
    await asyncio.sleep(0.01)
    gone.cancel()
    store.release.set()
    assert await stays == "v2"
    assert gone.cancelled()
    assert store.batches == [[1, 2]]


async def test_batches_are_bounded() -> None:
    store = Store()
    store.release.set()
    lookup = LookupBatcher(store.run, lambda: "none", max_batch=2)
    assert await asyncio.gather(*(lookup(k) for k in range(5))) == [f"v{k}" for k in range(5)]
    assert store.batches == [[0, 1], [2, 3], [4]]
