"""Full-text search of messages: PostgreSQL FTS over the generated `search_vector` column
(one GIN index with the group id, migration 0005), `websearch_to_tsquery`, ranked by
`ts_rank_cd` among bounded candidates, with `ts_headline` snippets for the page only."""

from __future__ import annotations

from chat_service.domain.models import SearchHit
from chat_service.domain.search import SNIPPET_START, SNIPPET_STOP, parse_snippet
from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.pool import PostgresStore
from chat_service.storage.postgres.rows import message_from_row, select_messages

# Bounded snippets: a short message whole, a long one as up to 35 words from its best match
# (markup-like tags are left out by the parser); parse_snippet also cuts to 300 characters.
HEADLINE_OPTIONS = f"StartSel={SNIPPET_START}, StopSel={SNIPPET_STOP}, MaxWords=35, MinWords=15"


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
            # Plans for this query's own words (never a generic plan): per group, the planner
            # reads the newest messages backwards when a word is common, the GIN index when
            # it is rare (tsvector statistics), so a search costs about the same for both.
            groups = await conn.fetchval(
                """SELECT count(*) FROM group_members, set_config(
                       'plan_cache_mode', 'force_custom_plan', true)
                   WHERE user_id = $1 AND ($2::bigint = 0 OR group_id = $2)""",
                user_id,
                group_id,
            )
            if not groups:
                return []
            per_group = max(offset + limit, candidates // groups)
            rows = await conn.fetch(_SEARCH, self.text_search_config, query, user_id, group_id,
                                    limit, offset, per_group, HEADLINE_OPTIONS)
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


# Candidates: the newest `$7` matches of each of the user's groups (all of them for a rare
# word), ranked together; the page is cut from that ranking and only it gets snippets.
_SEARCH = """
    WITH hits AS (
        SELECT c.id, c.content,
               ts_rank_cd(c.search_vector, websearch_to_tsquery($1::regconfig, $2)) AS rank
        FROM group_members gm
        CROSS JOIN LATERAL (
            SELECT m.id, m.content, m.search_vector FROM messages m
            WHERE m.group_id = gm.group_id
              AND m.search_vector @@ websearch_to_tsquery($1::regconfig, $2)
              AND m.deleted_at IS NULL AND m.kind <> 3
            ORDER BY m.seq DESC LIMIT $7) c
        WHERE gm.user_id = $3 AND ($4::bigint = 0 OR gm.group_id = $4)
        ORDER BY rank DESC, c.id DESC
        LIMIT $5 OFFSET $6)
    SELECT h.id, h.rank,
           ts_headline($1::regconfig, h.content, websearch_to_tsquery($1::regconfig, $2), $8)
             AS snippet
    FROM hits h
    ORDER BY h.rank DESC, h.id DESC"""
