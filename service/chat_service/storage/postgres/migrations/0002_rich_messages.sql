-- Change feed of a group: edits, deletes and reaction changes get an update_seq so a
-- resuming client can ask for what changed since its last position.
ALTER TABLE groups ADD COLUMN last_update_seq BIGINT NOT NULL DEFAULT 0;

-- Read receipts are high-water marks, one per member; mute is a per-member preference.
ALTER TABLE group_members
    ADD COLUMN read_seq BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN muted BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE users ADD COLUMN private_receipts BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE messages
    ADD COLUMN reply_to_id BIGINT,
    ADD COLUMN edited_at TIMESTAMPTZ,
    ADD COLUMN deleted_at TIMESTAMPTZ,
    ADD COLUMN update_seq BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN attachment_id TEXT,
    ADD COLUMN mentions JSONB;
CREATE INDEX messages_updates_idx ON messages (group_id, update_seq) WHERE update_seq > 0;
CREATE UNIQUE INDEX messages_attachment_idx ON messages (attachment_id)
    WHERE attachment_id IS NOT NULL;

-- Who is mentioned where (user_id 0 = @all), for mention counts and "my mentions".
CREATE TABLE message_mentions (
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    group_id   BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    user_id    BIGINT NOT NULL,
    from_user  BIGINT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX message_mentions_user_idx ON message_mentions (user_id, message_id DESC);
CREATE INDEX message_mentions_group_idx ON message_mentions (group_id, seq);

CREATE TABLE reactions (
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL,
    emoji      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (message_id, user_id, emoji)
);
