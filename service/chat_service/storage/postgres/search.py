"""Full-text search of messages: PostgreSQL FTS over the generated `search_vector` column
(GIN index, migration 0005), `websearch_to_tsquery`, ranked by `ts_rank_cd`, with
`ts_headline` snippets for the page only.

Two plans, chosen per search from the planner's estimate of how many of the caller's messages
match (`search_selectivity`, from the column's statistics):
- a rarer query ranks every match, found through the GIN index (one posting-list read, then
  only the caller's groups);
- a common one ranks the newest matches of each group, read backwards through the group's
  (group_id, seq) index until enough match: for a word in most messages that is a few rows
  per group, where the GIN index would hand over nearly every message of every group.
Each plan reads about as many rows as the other at the switch-over, so the cost of a search
stays bounded whatever its words.
"""

from __future__ import annotations

import math

from chat_service.domain.conversation import SearchHit
from chat_service.domain.search import SNIPPET_START, SNIPPET_STOP, parse_snippet
from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.pool import Conn, PostgresStore
from chat_service.storage.postgres.rows import message_from_row, select_messages

# Bounded snippets: a short message whole, a long one as up to 35 words from its best match
# (markup-like tags are left out by the parser); parse_snippet also cuts to 300 characters.
HEADLINE_OPTIONS = f"StartSel={SNIPPET_START}, StopSel={SNIPPET_STOP}, MaxWords=35, MinWords=15"

_QUERY = "websearch_to_tsquery($1::regconfig, $2)"
_LIVE = "m.deleted_at IS NULL AND m.kind <> 3"

# Every match in the caller's groups ($3 user, $4 group or 0).
_EVERY_MATCH = f"""
    SELECT m.id, m.content, m.search_vector FROM messages m
    WHERE m.group_id = ANY (ARRAY(
            SELECT gm.group_id FROM group_members gm
            WHERE gm.user_id = $3 AND ($4::bigint = 0 OR gm.group_id = $4)))
      AND m.search_vector @@ {_QUERY} AND {_LIVE}"""

# The newest $8 matches of each of the caller's groups.
_NEWEST_PER_GROUP = f"""
    SELECT c.id, c.content, c.search_vector FROM group_members gm
    CROSS JOIN LATERAL (
        SELECT m.id, m.content, m.search_vector FROM messages m
        WHERE m.group_id = gm.group_id AND m.search_vector @@ {_QUERY} AND {_LIVE}
        ORDER BY m.seq DESC LIMIT $8) c
    WHERE gm.user_id = $3 AND ($4::bigint = 0 OR gm.group_id = $4)"""


def _ranked(candidates: str) -> str:
    """The page ($5 rows after $6) of the candidates, best first, with snippets ($7)."""
    return f"""
    WITH hits AS (
        SELECT c.id, c.content, ts_rank_cd(c.search_vector, {_QUERY}) AS rank
        FROM ({candidates}) c
        ORDER BY rank DESC, c.id DESC
        LIMIT $5 OFFSET $6)
    SELECT h.id, h.rank, ts_headline($1::regconfig, h.content, {_QUERY}, $7) AS snippet
    FROM hits h
    ORDER BY h.rank DESC, h.id DESC"""


class PostgresSearch(PostgresStore):
    # The text-search configuration of the `search_vector` column (SEARCH_TEXT_CONFIG; set
    # by the repository's constructor, applied to the column by migrate()).
    text_search_config = "simple"

    @storage_errors
    async def search(
        self, user_id: int, group_id: int, query: str, limit: int, offset: int,
        candidates: int,
    ) -> list[SearchHit]:
        async with self._pool.acquire() as conn, conn.transaction():
            plan = await self._plan(conn, user_id, group_id, query, limit + offset, candidates)
            if plan is None:
                return []
            sql, more = plan
            rows = await conn.fetch(sql, self.text_search_config, query, user_id, group_id,
                                    limit, offset, HEADLINE_OPTIONS, *more)
            if not rows:
                return []
            found = await conn.fetch(
                select_messages("WHERE m.id = ANY($1::bigint[])", "$2"),
                [r["id"] for r in rows],
                user_id,
            )
        messages = {r["id"]: message_from_row(r) for r in found}
        hits: list[SearchHit] = []
        for r in rows:
            text, marks = parse_snippet(r["snippet"])
            hits.append(SearchHit(messages[r["id"]], text, marks, float(r["rank"])))
        return hits

    async def _plan(
        self, conn: Conn, user_id: int, group_id: int, query: str, depth: int, candidates: int
    ) -> tuple[str, list[int]] | None:
        """(statement, its arguments after the seven common ones) for this search; None when
        the user has no group.
        Plans are made for the query's own words (never a generic plan), and the newest-first
        plan is kept from bitmap scans, which would read every match of a common word."""
        row = await conn.fetchrow(
            """SELECT count(*) AS groups, COALESCE(sum(g.last_seq), 0)::float8 AS messages,
                      search_selectivity($3::regconfig, $4) AS share,
                      set_config('plan_cache_mode', 'force_custom_plan', true)
               FROM group_members gm JOIN groups g ON g.id = gm.group_id
               WHERE gm.user_id = $1 AND ($2::bigint = 0 OR gm.group_id = $2)""",
            user_id,
            group_id,
            self.text_search_config,
            query,
        )
        assert row is not None  # an aggregate: always one row
        groups = row["groups"]
        if not groups:
            return None
        per_group = max(depth, candidates // groups)
        share = max(float(row["share"] or 0.0), 1e-9)
        messages = float(row["messages"])
        every_match_rows = share * messages
        newest_rows = min(messages, groups * per_group / share)
        if every_match_rows <= max(newest_rows, candidates) or math.isnan(every_match_rows):
            return _ranked(_EVERY_MATCH), []
        await conn.execute("SELECT set_config('enable_bitmapscan', 'off', true)")
        return _ranked(_NEWEST_PER_GROUP), [per_group]
