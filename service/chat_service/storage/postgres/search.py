"""Full-text search of messages: PostgreSQL FTS over the generated `search_vector` column
(one GIN index with the group id, migration 0005), `websearch_to_tsquery`, ranked by
`ts_rank_cd`, with `ts_headline` snippets for the page only."""

from __future__ import annotations

from chat_service.domain.models import SearchHit
from chat_service.domain.search import SNIPPET_START, SNIPPET_STOP, parse_snippet
from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.pool import PostgresStore
from chat_service.storage.postgres.rows import message_from_row, select_messages

# Bounded snippets: at most two fragments of up to 24 words around the matches.
HEADLINE_OPTIONS = (
    f"StartSel={SNIPPET_START}, StopSel={SNIPPET_STOP}, MaxWords=24, MinWords=8, "
    'MaxFragments=2, FragmentDelimiter=" … "'
)


class PostgresSearch(PostgresStore):
    # The text-search configuration of the `search_vector` column (SEARCH_TEXT_CONFIG; set
    # by the repository's constructor, applied to the column by migrate()).
    text_search_config = "simple"

    @storage_errors
    async def search(
        self, user_id: int, group_id: int, query: str, limit: int, offset: int
    ) -> list[SearchHit]:
        rows = await self._pool.fetch(
            """WITH q AS (SELECT websearch_to_tsquery($1::regconfig, $2) AS q),
               hits AS (
                   SELECT m.id, m.content, ts_rank_cd(m.search_vector, q.q) AS rank
                   FROM messages m, q
                   WHERE m.group_id = ANY (ARRAY(
                           SELECT gm.group_id FROM group_members gm
                           WHERE gm.user_id = $3 AND ($4::bigint = 0 OR gm.group_id = $4)))
                     AND m.search_vector @@ q.q
                     AND m.deleted_at IS NULL AND m.kind <> 3
                   ORDER BY rank DESC, m.id DESC
                   LIMIT $5 OFFSET $6)
               SELECT h.id, h.rank, ts_headline($1::regconfig, h.content, q.q, $7) AS snippet
               FROM hits h, q
               ORDER BY h.rank DESC, h.id DESC""",
            self.text_search_config,
            query,
            user_id,
            group_id,
            limit,
            offset,
            HEADLINE_OPTIONS,
        )
        if not rows:
            return []
        found = await self._pool.fetch(
            select_messages("WHERE m.id = ANY($1::bigint[])", "$2"),
            [r["id"] for r in rows],
            user_id,
        )
        messages = {r["id"]: message_from_row(r) for r in found}
        hits: list[SearchHit] = []
        for r in rows:
            message = messages.get(r["id"])
            if message is None:  # deleted between the two reads
                continue
            text, marks = parse_snippet(r["snippet"])
            hits.append(SearchHit(message, text, marks, float(r["rank"])))
        return hits
