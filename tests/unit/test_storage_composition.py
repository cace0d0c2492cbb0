"""The PostgreSQL repository is one object composed of a store per concern; these checks keep
the composition honest without a database."""

from __future__ import annotations

import inspect

import asyncpg

from chat_service.domain.ports import (
    ChatRepository,
    GroupAccess,
    MessageChangeStore,
    ReceiptStore,
)
from chat_service.storage.postgres.changes import PostgresMessageChanges
from chat_service.storage.postgres.groups import PostgresGroups
from chat_service.storage.postgres.members import PostgresMembers
from chat_service.storage.postgres.messages import PostgresMessages
from chat_service.storage.postgres.pool import PostgresStore
from chat_service.storage.postgres.receipts import PostgresReceipts
from chat_service.storage.postgres.repository import PostgresChatRepository

CONCERNS = (PostgresMembers, PostgresGroups, PostgresMessages)


def _satisfies_the_ports(pool: asyncpg.Pool) -> None:
    """Never called: mypy checks each assignment, i.e. that the stores implement the ports."""
    repo = PostgresChatRepository(pool)
    as_repository: ChatRepository = repo
    as_access: GroupAccess = repo
    receipts: ReceiptStore = PostgresReceipts(pool)
    changes: MessageChangeStore = PostgresMessageChanges(pool)
    del as_repository, as_access, receipts, changes


def _own_methods(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if inspect.isfunction(v) and n != "__init__"}


def test_no_concern_store_shadows_another() -> None:
    # With inheritance a method defined twice would silently hide one of them.
    seen: dict[str, str] = {}
    for store in CONCERNS:
        for name in _own_methods(store):
            assert name not in seen, f"{name} is in both {seen[name]} and {store.__name__}"
            seen[name] = store.__name__


def test_the_repository_adds_nothing_of_its_own() -> None:
    assert _own_methods(PostgresChatRepository) == set()
    assert all(issubclass(PostgresChatRepository, s) for s in CONCERNS)
    assert all(issubclass(s, PostgresStore) for s in CONCERNS)


def test_every_chat_repository_method_is_implemented() -> None:
    wanted = {n for n in dir(ChatRepository) if not n.startswith("_")}
    assert wanted <= set(dir(PostgresChatRepository))
