-- Users as the Laravel app describes them in token claims (display data only).
CREATE TABLE users (
    id          BIGINT PRIMARY KEY,
    name        TEXT NOT NULL DEFAULT '',
    email       TEXT NOT NULL DEFAULT '',
    avatar      TEXT NOT NULL DEFAULT '',
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE groups (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_by   BIGINT NOT NULL,
    invite_only  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Sequence number of the newest message; bumped in the same transaction as the insert,
    -- so seq is gap-free and commits of one group are serialised by this row's lock.
    last_seq     BIGINT NOT NULL DEFAULT 0,
    member_count INTEGER NOT NULL DEFAULT 0
);

-- role: 1 member, 2 admin, 3 owner (domain.models.Role)
CREATE TABLE group_members (
    group_id   BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL,
    role       SMALLINT NOT NULL DEFAULT 1 CHECK (role BETWEEN 1 AND 3),
    joined_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user_idx ON group_members (user_id);

-- kind: 0 text, 1 image, 2 file, 3 system (domain.models.MessageKind)
CREATE TABLE messages (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id       BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    seq            BIGINT NOT NULL,
    user_id        BIGINT NOT NULL,
    kind           SMALLINT NOT NULL DEFAULT 0,
    content        TEXT NOT NULL,
    client_msg_id  TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (group_id, seq)
);
-- Idempotent sends: one message per (group, sender, client key).
CREATE UNIQUE INDEX messages_idempotency_idx
    ON messages (group_id, user_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
