-- Upload quotas (chat_service.attachments, issue 12): what a user may have pending and start
-- per window, what a group may store. Checked in StartUpload's transaction under per-user and
-- per-group advisory locks.

-- One row per StartUpload, kept for the rate window (ATTACHMENT_USER_WINDOW_SECONDS) by the
-- cleanup: the rate counts what a user started even after the upload was sent and deleted.
CREATE TABLE attachment_upload_starts (
  owner_id    BIGINT NOT NULL,
  started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  size        BIGINT NOT NULL                -- declared size
);
CREATE INDEX attachment_upload_starts_owner_idx
  ON attachment_upload_starts (owner_id, started_at) INCLUDE (size);
CREATE INDEX attachment_upload_starts_started_idx ON attachment_upload_starts (started_at);
-- Uploads of the last hour before this migration count towards the rate from the start.
INSERT INTO attachment_upload_starts (owner_id, started_at, size)
  SELECT owner_id, created_at, size FROM attachments
  WHERE created_at > now() - interval '1 hour';

-- A user's pending (unsent) uploads, and a group's stored and reserved bytes: index-only sums.
CREATE INDEX attachments_pending_owner_idx ON attachments (owner_id) INCLUDE (size)
  WHERE message_id IS NULL AND purging_at IS NULL;
CREATE INDEX attachments_group_bytes_idx ON attachments (group_id) INCLUDE (size)
  WHERE purging_at IS NULL;
