"""The text-search configuration of `messages.search_vector` (SEARCH_TEXT_CONFIG).

Migration 0005 builds the column with 'simple' (no stemming, no stop words: right for mixed
languages). Another configuration ('english', 'german', ...) is applied here, by `migrate`,
under its advisory lock: the generated column and its index are rebuilt, which rewrites the
messages table once; later runs with the same setting do nothing.
"""

from __future__ import annotations

import logging
import re

import asyncpg
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# As migration 0005 creates it (bulk loads drop it and create it again with this).
SEARCH_INDEX_DDL = "CREATE INDEX messages_search_idx ON messages USING gin (search_vector)"


async def current_config(conn: asyncpg.Connection | PoolConnectionProxy) -> str:
    """The configuration the column is generated with ('' if there is no such column)."""
    expr = await conn.fetchval(
        """SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d
           JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
           WHERE d.adrelid = 'messages'::regclass AND a.attname = 'search_vector'"""
    )
    match = re.search(r"'([a-z_][a-z0-9_]*)'::regconfig", expr or "")
    return match.group(1) if match else ""


async def apply_text_search_config(
    conn: asyncpg.Connection | PoolConnectionProxy, config: str
) -> bool:
    """Rebuild the search column for `config` when it was built for another; True if it was."""
    if not _NAME.match(config):
        raise ValueError(f"not a text-search configuration name: {config!r}")
    current = await current_config(conn)
    if current in ("", config):  # no column yet (before 0005), or built for this one
        return False
    known = await conn.fetchval("SELECT 1 FROM pg_ts_config WHERE cfgname = $1", config)
    if not known:
        raise ValueError(f"PostgreSQL has no text-search configuration {config!r}")
    async with conn.transaction():
        await conn.execute("DROP INDEX IF EXISTS messages_search_idx")
        await conn.execute("ALTER TABLE messages DROP COLUMN IF EXISTS search_vector")
        # `config` matched _NAME and names an existing configuration: safe to inline (a
        # generated column needs a constant).
        await conn.execute(
            f"""ALTER TABLE messages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS
                (to_tsvector('{config}'::regconfig, content)) STORED"""
        )
        await conn.execute(SEARCH_INDEX_DDL)
    log.info("search column rebuilt for text-search configuration %r", config)
    return True
