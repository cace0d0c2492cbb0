-- Issue 16: threads, full-text search, pins, mark-unread. Applies to a populated database:
-- new columns are nullable or have constant defaults; the generated search column rewrites
-- `messages` once (every existing message becomes searchable).

-- Threads. A reply is a message of the group (its own seq) that names its thread's parent;
-- `also_in_group` replies show in the main timeline too (history, unread_count).
ALTER TABLE messages
    ADD COLUMN thread_parent_id BIGINT,
    ADD COLUMN also_in_group    BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN reply_count      INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN last_reply_at    TIMESTAMPTZ,
    ADD COLUMN pinned_at        TIMESTAMPTZ,
    ADD COLUMN pinned_by        BIGINT;
CREATE INDEX messages_thread_idx ON messages (thread_parent_id, seq)
    WHERE thread_parent_id IS NOT NULL;
CREATE INDEX messages_pinned_idx ON messages (group_id, pinned_at)
    WHERE pinned_at IS NOT NULL;

-- Who takes part in a thread (the parent's author and every replier), and how far each has
-- read it (the seq of the last reply read): per-user unread thread replies.
CREATE TABLE thread_participants (
    parent_id  BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    group_id   BIGINT NOT NULL,
    user_id    BIGINT NOT NULL,
    read_seq   BIGINT NOT NULL DEFAULT 0,
    joined_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (parent_id, user_id)
);
CREATE INDEX thread_participants_user_idx ON thread_participants (user_id, group_id);

-- Search: a generated tsvector that follows every edit and delete (a deleted message's
-- content is '', so it matches nothing), with a GIN index. The text-search configuration is
-- 'simple' here; SEARCH_TEXT_CONFIG other than 'simple' rebuilds the column at migrate time
-- (storage/postgres/search_config.py).
ALTER TABLE messages
    ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, content)) STORED;
CREATE INDEX messages_search_idx ON messages USING gin (search_vector);

-- The planner's estimate of the share of messages a query matches (from the column's
-- statistics): the search store reads it to choose between ranking every match and ranking
-- the newest matches of each group (storage/postgres/search.py).
CREATE FUNCTION search_selectivity(cfg regconfig, query text) RETURNS float8
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    plan json;
    total float8;
BEGIN
    EXECUTE format('EXPLAIN (FORMAT JSON) SELECT 1 FROM messages '
                   'WHERE search_vector @@ websearch_to_tsquery(%L::regconfig, %L)', cfg, query)
        INTO plan;
    SELECT GREATEST(reltuples, 1) INTO total FROM pg_class WHERE oid = 'messages'::regclass;
    RETURN LEAST(1.0, (plan -> 0 -> 'Plan' ->> 'Plan Rows')::float8 / total);
END
$$;
