"""Backend-wide bans and erasures reach every pod through the broker (issue 15).

An `access_revoked` event is published for group 0 (no group's streams), which every pod
reads (the Redis broker's broadcast stream, fanout/stream_keys.py): here, before the hub sees
the batch, it updates this pod's ban list (auth/bans.py) and ends the user's open streams on
this pod (they resume elsewhere only to be refused).
"""

from __future__ import annotations

from collections.abc import Iterable

from chat_service.auth.bans import BanList
from chat_service.fanout.hub import Hub
from chat_service.gen import chat_pb2 as pb

# First bytes of a serialized ChatEvent whose oneof is `access_revoked` (field 19,
# length-delimited: tag 19 << 3 | 2 = 154, a two-byte varint).
REVOKED_TAG = bytes([0x9A, 0x01])


class RevocationSink:
    """The broker's sink: revocations applied, then every entry handed to the hub."""

    def __init__(self, hub: Hub, bans: BanList) -> None:
        self._hub = hub
        self._bans = bans

    def __call__(self, items: Iterable[tuple[int, bytes]]) -> None:
        batch = items if isinstance(items, list) else list(items)
        for group_id, payload in batch:
            if group_id == 0 and payload.startswith(REVOKED_TAG):
                self._revoke(payload)
        self._hub.on_payloads(batch)

    def _revoke(self, payload: bytes) -> None:
        try:
            revoked = pb.ChatEvent.FromString(payload).access_revoked
        except Exception:
            return  # the hub logs undecodable entries
        self._bans.apply(revoked.user_id, revoked.until_ms)
        if revoked.until_ms != -1:  # a ban or an erasure, not a ban lifted
            for sub in list(self._hub.by_user.get(revoked.user_id, ())):
                sub.close(revoked.reason)
