-- Issue 15: the app's backend API. Only additions with defaults (applies to a populated
-- database, with or without 0005), nothing rewritten.

-- User directory: profiles synced by the backend (UpsertUsers) win over token claims.
ALTER TABLE users
    ADD COLUMN IF NOT EXISTS custom JSONB,
    ADD COLUMN IF NOT EXISTS directory_at TIMESTAMPTZ,    -- last UpsertUsers; claims then ignored
    ADD COLUMN IF NOT EXISTS deleted_at TIMESTAMPTZ,      -- DeleteUser / EraseUser (anonymised)
    ADD COLUMN IF NOT EXISTS erased_at TIMESTAMPTZ,       -- EraseUser: tokens refused from now
    ADD COLUMN IF NOT EXISTS banned_until TIMESTAMPTZ,    -- backend-wide ban ('infinity': no expiry)
    ADD COLUMN IF NOT EXISTS ban_reason TEXT NOT NULL DEFAULT '';
-- The pods' ban list: small, read whole every BAN_REFRESH_SECONDS.
CREATE INDEX IF NOT EXISTS users_banned_idx ON users (id)
    WHERE banned_until IS NOT NULL OR erased_at IS NOT NULL;

-- Group administration and direct conversations.
ALTER TABLE groups
    ADD COLUMN IF NOT EXISTS avatar TEXT NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS archived_at TIMESTAMPTZ,
    -- A direct (1:1) conversation: the two user ids, lower first. One per pair, whoever asks
    -- first and on whatever pod: the unique index decides.
    ADD COLUMN IF NOT EXISTS direct_low BIGINT,
    ADD COLUMN IF NOT EXISTS direct_high BIGINT;
CREATE UNIQUE INDEX IF NOT EXISTS groups_direct_pair_idx ON groups (direct_low, direct_high)
    WHERE direct_low IS NOT NULL;
ALTER TABLE groups DROP CONSTRAINT IF EXISTS groups_direct_ordered;
ALTER TABLE groups ADD CONSTRAINT groups_direct_ordered
    CHECK (direct_low IS NULL OR (direct_high IS NOT NULL AND direct_low < direct_high));

-- Mute by a moderator (not the member's own notification mute, `muted`).
ALTER TABLE group_members ADD COLUMN IF NOT EXISTS silenced_until TIMESTAMPTZ;

-- Messages posted by the backend (system messages, act_as).
ALTER TABLE messages ADD COLUMN IF NOT EXISTS via_backend BOOLEAN NOT NULL DEFAULT FALSE;

-- Group bans: who may not (re)join a group, until when ('infinity': until lifted).
CREATE TABLE IF NOT EXISTS group_bans (
    group_id    BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL,
    until       TIMESTAMPTZ NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX IF NOT EXISTS group_bans_user_idx ON group_bans (user_id);

-- The moderation log: every ban, unban, mute, unmute, report (group_id 0: backend-wide).
-- kind: domain.moderation.ActionKind; actor_id 0: the app's backend.
CREATE TABLE IF NOT EXISTS moderation_actions (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id    BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    actor_id    BIGINT NOT NULL,
    kind        SMALLINT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    expires_at  TIMESTAMPTZ,
    message_id  BIGINT NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS moderation_actions_group_idx ON moderation_actions (group_id, id DESC);
CREATE INDEX IF NOT EXISTS moderation_actions_user_idx ON moderation_actions (user_id);
