-- File and image sharing (chat_service.attachments). One row per upload; the bytes live in
-- the store named by `store`: attachment_chunks below ('postgres') or an S3 bucket ('s3').
CREATE TABLE attachments (
  id            TEXT PRIMARY KEY,          -- random URL-safe id (secrets.token_urlsafe(16))
  group_id      BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
  owner_id      BIGINT NOT NULL,
  file_name     TEXT NOT NULL,
  claimed_type  TEXT NOT NULL,
  content_type  TEXT NOT NULL DEFAULT '',  -- detected from the bytes
  size          BIGINT NOT NULL,           -- declared total size
  sha256        TEXT NOT NULL,             -- declared hex digest
  received      BIGINT NOT NULL DEFAULT 0,
  width         INTEGER NOT NULL DEFAULT 0,
  height        INTEGER NOT NULL DEFAULT 0,
  store         TEXT NOT NULL DEFAULT 'postgres',
  created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
  completed_at  TIMESTAMPTZ,               -- set when all bytes arrived and the checksum matched
  message_id    BIGINT,                    -- set by the message code when sent in a message
  -- Added by the attachments code:
  head          BYTEA NOT NULL DEFAULT '', -- first bytes (content sniffing); emptied on completion
  purging_at    TIMESTAMPTZ                -- its bytes are being deleted (cleanup, purge)
);
-- The orphan cleanup: uploads never sent in a message, oldest first.
CREATE INDEX attachments_orphans_idx ON attachments (created_at) WHERE message_id IS NULL;
-- Deletions left half done by a pod that died.
CREATE INDEX attachments_purging_idx ON attachments (purging_at) WHERE purging_at IS NOT NULL;
CREATE INDEX attachments_group_idx ON attachments (group_id);

-- Bytes of attachments in the 'postgres' store: one row per uploaded chunk (at most 1 MiB).
CREATE TABLE attachment_chunks (
  attachment_id TEXT NOT NULL REFERENCES attachments (id) ON DELETE CASCADE,
  pos           BIGINT NOT NULL,           -- byte offset of the chunk in the file
  data          BYTEA NOT NULL,
  PRIMARY KEY (attachment_id, pos)
);
-- Mostly compressed formats already: store out of line without trying to compress again.
ALTER TABLE attachment_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
