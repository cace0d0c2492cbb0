"""Migration 0005 (threads, search, pins) applied to a database that already holds chat
data, as an upgrade finds it: every existing message becomes searchable, counts stay as they
were, and SEARCH_TEXT_CONFIG rebuilds the search column for another configuration."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from chat_service.domain.models import MemberChange, UserProfile
from chat_service.storage.postgres import migrate as migrations
from chat_service.storage.postgres.changes import PostgresMessageChanges
from chat_service.storage.postgres.repository import PostgresChatRepository
from chat_service.storage.postgres.search_config import current_config
from tests.contract.conftest import PostgresDb


@pytest.fixture
async def fresh_db(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The DSN of a new, empty database on the shared server."""
    # Asked for here (as conftest's chat_stores does), so the server outlives the event loop.
    postgres_db: PostgresDb = request.getfixturevalue("postgres_db")
    admin = await postgres_db.connect()
    name = f"upgrade_{uuid.uuid4().hex[:10]}"
    await admin.execute(f"CREATE DATABASE {name}")
    s = postgres_db.server
    yield f"postgresql://{s.user}:{s.password}@127.0.0.1:{s.port}/{name}"
    await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


async def test_0005_applies_to_a_populated_database(
    fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = migrations.available_migrations()
    before = [m for m in everything if m.version < 5]
    pool = await asyncpg.create_pool(fresh_db, min_size=1, max_size=4)
    assert pool is not None
    try:
        with monkeypatch.context() as m:
            m.setattr(migrations, "available_migrations", lambda: before)
            async with pool.acquire() as conn:
                await migrations.migrate(conn, "simple")  # the config step finds no column
        # Data as the previous release wrote it (plain SQL: today's code expects 0005).
        ann, bo = UserProfile(1, "Ann"), UserProfile(2, "Bo")
        group_id = await pool.fetchval(
            """INSERT INTO groups (name, created_by, last_seq, member_count)
               VALUES ('old', 1, 3, 2) RETURNING id"""
        )
        await pool.execute(
            """INSERT INTO group_members (group_id, user_id, role, read_seq)
               VALUES ($1, 1, 3, 1), ($1, 2, 1, 0)""", group_id)
        await pool.execute(
            """INSERT INTO messages (group_id, seq, user_id, content, deleted_at)
               VALUES ($1, 1, 1, 'the quarterly reports are late', NULL),
                      ($1, 2, 2, 'reports attached', NULL),
                      ($1, 3, 2, '', now())""", group_id)

        async with pool.acquire() as conn:
            applied = await migrations.migrate(conn, "simple")
        assert 5 in applied
        repo = PostgresChatRepository(pool, batch_sends=False)
        hits = await repo.search(ann.id, 0, "reports", 10, 0, 100)
        assert sorted(h.message.content for h in hits) == [
            "reports attached", "the quarterly reports are late"]
        group = await repo.get_group(group_id, ann.id)
        assert group is not None
        # unread as before: messages after the read position by others (a tombstone too)
        assert (group.unread_count, group.thread_unread_count, group.pinned_count) == (2, 0, 0)
        old = await repo.get_message(hits[0].message.id)
        assert old is not None and (old.reply_count, old.thread_parent_id) == (0, 0)
        await repo.upsert_user(bo)
        await repo.remove_member(group_id, bo.id, bo, MemberChange.LEFT)  # old rows still work
        edited = await repo.get_message(hits[0].message.id)
        assert edited is not None
        await PostgresMessageChanges(pool).edit(edited, "renamed", ())
        assert len(await repo.search(ann.id, 0, "reports", 10, 0, 100)) == 1

        # Another text-search configuration rebuilds the column: English stems.
        async with pool.acquire() as conn:
            assert await current_config(conn) == "simple"
            await migrations.migrate(conn, "english")
            assert await current_config(conn) == "english"
        english = PostgresChatRepository(pool, batch_sends=False, text_search_config="english")
        assert len(await english.search(ann.id, 0, "report", 10, 0, 100)) == 1
        async with pool.acquire() as conn:
            assert await migrations.migrate(conn, "english") == []
            with pytest.raises(ValueError, match="no text-search configuration"):
                await migrations.migrate(conn, "klingon")
    finally:
        await pool.close()


async def test_a_common_word_ranks_only_the_newest_matches_of_each_group(fresh_db: str) -> None:
    pool = await asyncpg.create_pool(fresh_db, min_size=1, max_size=2)
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await migrations.migrate(conn)
        group_id = await pool.fetchval(
            """INSERT INTO groups (name, created_by, last_seq, member_count)
               VALUES ('busy', 1, 300, 1) RETURNING id""")
        await pool.execute(
            "INSERT INTO group_members (group_id, user_id, role) VALUES ($1, 1, 3)", group_id)
        await pool.execute(
            """INSERT INTO messages (group_id, seq, user_id, content)
               SELECT $1, s, 1, CASE WHEN s = 1 THEN 'yak yak yak yak' ELSE 'yak ' || s END
               FROM generate_series(1, 300) AS s""", group_id)
        await pool.execute("ANALYZE messages")  # the statistics the plan choice reads
        repo = PostgresChatRepository(pool, batch_sends=False)
        # every message matches: with a budget of 10 only the 10 newest are ranked ...
        hits = await repo.search(1, 0, "yak", 5, 0, 10)
        assert len(hits) == 5 and all(h.message.seq > 290 for h in hits)
        # ... while a budget over the expected matches ranks them all: the best is the oldest
        hits = await repo.search(1, 0, "yak", 5, 0, 1000)
        assert hits[0].message.seq == 1
    finally:
        await pool.close()
