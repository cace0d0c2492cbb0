"""The in-memory twin of the PostgreSQL stores: same ports, same answers, no I/O.

    state.py       the tables (plain dicts) and how a row is shown as a domain model
    repository.py  users, groups, membership, messages   (ChatRepository)
    receipts.py    read positions, mute, privacy          (ReceiptStore)
    changes.py     edits, deletes, reactions              (MessageChangeStore)
    admin.py       directory, group admin, directs, moderation, erasure (AdminRepository)

Build one `MemoryState` and give it to each store, as the PostgreSQL stores share a pool.
For unit tests and one-process local runs, not production: nothing survives the process.
tests/contract/test_chat_store_contract.py holds it to the PostgreSQL store's behaviour.

Every method runs without awaiting anything in between its reads and writes, so on one
event loop each call is atomic, as each PostgreSQL statement or transaction is.
"""

from __future__ import annotations

from chat_service.storage.memory.admin import MemoryAdminRepository
from chat_service.storage.memory.changes import MemoryMessageChanges
from chat_service.storage.memory.receipts import MemoryReceipts
from chat_service.storage.memory.repository import MemoryChatRepository
from chat_service.storage.memory.state import MemoryState

__all__ = [
    "MemoryAdminRepository",
    "MemoryChatRepository",
    "MemoryMessageChanges",
    "MemoryReceipts",
    "MemoryState",
]
