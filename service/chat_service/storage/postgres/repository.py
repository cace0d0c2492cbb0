"""The PostgreSQL repository: one object over the shared pool, composed of a store per concern.

    members.py   users, membership, roles      (MembershipStore, UserStore)
    groups.py    groups and their heads        (GroupStore)
    messages.py  sends, history, replay        (MessageStore)
    receipts.py  read positions, mute, privacy (ReceiptStore; its own object)
    changes.py   edits, deletes, reactions     (MessageChangeStore; its own object)
    rows.py      row -> model mapping;  errors.py  asyncpg -> domain errors;  pool.py  the pool

Each store is a class of its own over the pool; this one inherits them all (as synapse's
DataStore does), so callers keep one object that satisfies `ChatRepository`.
"""

from __future__ import annotations

from chat_service.storage.postgres.groups import PostgresGroups
from chat_service.storage.postgres.members import PostgresMembers
from chat_service.storage.postgres.messages import PostgresMessages
from chat_service.storage.postgres.pool import create_pool

__all__ = ["PostgresChatRepository", "create_pool"]


class PostgresChatRepository(PostgresMembers, PostgresGroups, PostgresMessages):
    """`PostgresChatRepository(pool, batch_sends=True)`; `start()`/`stop()` run the batcher."""
