"""The PostgreSQL repository: one object over the shared pool, composed of a store per concern.

    members.py   users, membership, roles      (MembershipStore, UserStore)
    groups.py    groups and their heads        (GroupStore)
    messages.py  sends, history, replay        (MessageStore)
    threads.py   thread replies, positions     (ThreadStore; replies are sent by messages.py)
    search.py    full-text search              (SearchStore; search_config.py its column)
    pins.py      pinned messages               (PinStore)
    receipts.py  read positions, mute, privacy (ReceiptStore; its own object)
    changes.py   edits, deletes, reactions     (MessageChangeStore; its own object)
    directory.py synced profiles, anonymising  (DirectoryStore)
    admin.py     group card, delete, backend posts (GroupAdminStore)
    direct.py    1:1 conversations             (DirectStore)
    moderation.py bans, mutes, the log         (ModerationStore)
    erasure.py   GDPR erase and export         (ErasureStore)
    rows.py      row -> model mapping;  errors.py  asyncpg -> domain errors;  pool.py  the pool

Each store is a class of its own over the pool; this one inherits them all (as synapse's
DataStore does), so callers keep one object that satisfies `ChatRepository`.
"""

from __future__ import annotations

import asyncpg

from chat_service.storage.postgres.admin import PostgresGroupAdmin
from chat_service.storage.postgres.direct import PostgresDirect
from chat_service.storage.postgres.directory import PostgresDirectory
from chat_service.storage.postgres.erasure import PostgresErasure
from chat_service.storage.postgres.groups import PostgresGroups
from chat_service.storage.postgres.members import PostgresMembers
from chat_service.storage.postgres.messages import PostgresMessages
from chat_service.storage.postgres.moderation import PostgresModeration
from chat_service.storage.postgres.pins import PostgresPins
from chat_service.storage.postgres.pool import create_pool
from chat_service.storage.postgres.search import PostgresSearch
from chat_service.storage.postgres.threads import PostgresThreads

__all__ = ["PostgresChatRepository", "create_pool"]


class PostgresChatRepository(
    PostgresMembers,
    PostgresGroups,
    PostgresMessages,
    PostgresDirectory,
    PostgresGroupAdmin,
    PostgresDirect,
    PostgresModeration,
    PostgresErasure,
    PostgresThreads,
    PostgresSearch,
    PostgresPins,
):
    """`PostgresChatRepository(pool, batch_sends=True)`; `start()`/`stop()` run the batcher.
    `text_search_config` must be the one migrate() gave the search column."""

    def __init__(
        self, pool: asyncpg.Pool, batch_sends: bool = True, text_search_config: str = "simple"
    ) -> None:
        super().__init__(pool, batch_sends)
        self.text_search_config = text_search_config
