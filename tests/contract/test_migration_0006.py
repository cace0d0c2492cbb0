"""Migration 0006 (issue 15) applied to a database already full of data: everything stored
before is kept and readable, the new columns take their defaults, and the new features work
on old rows. Whatever migrations come before it (0005 may or may not exist) are applied first,
as on a running installation; then `migrate` applies 0006 and is idempotent."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from chat_service.domain.models import GroupChanges, MessageKind, UserProfile
from chat_service.storage.postgres.migrate import available_migrations, migrate
from chat_service.storage.postgres.pool import create_pool
from chat_service.storage.postgres.repository import PostgresChatRepository
from tests.contract.conftest import PostgresDb

BACKEND = 6


@pytest.fixture
async def old_database(request: pytest.FixtureRequest) -> AsyncIterator[asyncpg.Pool]:
    """A new database on the contract server at the schema before 0006, with data."""
    # Asked for here, inside the event loop (as conftest's chat_stores does), so the server's
    # pool is closed before the loop is.
    postgres_db: PostgresDb = request.getfixturevalue("postgres_db")
    admin = await postgres_db.connect()
    name = f"before_0006_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    s = postgres_db.server
    pool = await create_pool(f"postgresql://{s.user}@127.0.0.1:{s.port}/{name}", s.password, 1, 4)
    try:
        async with pool.acquire() as conn:
            await conn.execute("""CREATE TABLE schema_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now())""")
            for m in available_migrations():
                if m.version < BACKEND:
                    await conn.execute(m.sql)
                    await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2)",
                                       m.version, m.name)
            await conn.execute("""
                INSERT INTO users (id, name, email) VALUES (1, 'Ann', 'ann@example.com'),
                                                           (2, 'Ben', '');
                INSERT INTO groups (name, created_by, last_seq, member_count, invite_only)
                    VALUES ('old group', 1, 2, 2, TRUE);
                INSERT INTO group_members (group_id, user_id, role)
                    SELECT id, 1, 3 FROM groups UNION ALL SELECT id, 2, 1 FROM groups;
                INSERT INTO messages (group_id, seq, user_id, kind, content)
                    SELECT id, 1, 1, 3, 'Ann created "old group"' FROM groups
                    UNION ALL SELECT id, 2, 2, 0, 'an old message' FROM groups;
                INSERT INTO reactions (message_id, user_id, emoji)
                    SELECT id, 1, '👍' FROM messages WHERE seq = 2;
            """)
        yield pool
    finally:
        await pool.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


async def test_0006_applies_to_a_populated_database_and_keeps_everything(
    old_database: asyncpg.Pool,
) -> None:
    pool = old_database
    async with pool.acquire() as conn:
        assert await migrate(conn) == [BACKEND]
        assert await migrate(conn) == []  # idempotent
    repo = PostgresChatRepository(pool, batch_sends=False)
    gid = await pool.fetchval("SELECT id FROM groups")
    group = await repo.get_group(gid, 1)
    assert group is not None
    assert (group.name, group.member_count, group.last_seq, group.avatar, group.archived,
            group.direct) == ("old group", 2, 2, "", False, False)
    page = await repo.history(gid, 0, 50, 1)
    old = page.messages[-1]
    assert (old.content, old.via_backend, [r.emoji for r in old.reactions]) == (
        "an old message", False, ["👍"])
    # New features on old rows: directory, a send (mute/archive checks), archive, a DM.
    assert await repo.upsert_directory([UserProfile(2, "Ben B.")]) == [2]
    sent = await repo.post_message(group_id=gid, sender=UserProfile(2, "Ben B."),
                                   content="after 0006", kind=MessageKind.TEXT,
                                   client_msg_id="")
    assert sent is not None and sent.message.seq == 3
    assert await repo.update_group(gid, GroupChanges(archived=True))
    direct, first = await repo.get_or_create_direct(UserProfile(1, "Ann"), 2)
    assert first is not None and direct != gid
    assert await repo.banned_users() == {}
