-- The event store: the global log, stream versions, and command outcomes for idempotency.
-- Positions are assigned under the es_head row lock, held until commit, so they are gap-free and in
-- commit order: a reader polling "position > checkpoint" can never skip a late-committing event.
CREATE TABLE es_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position BIGINT  NOT NULL
);
INSERT INTO es_head (id, position) VALUES (1, 0);

CREATE TABLE es_events (
    position       BIGINT      PRIMARY KEY,
    stream_id      TEXT COLLATE "C" NOT NULL,
    version        BIGINT      NOT NULL,
    event_id       UUID        NOT NULL UNIQUE,
    event_type     TEXT        NOT NULL,
    schema_version INTEGER     NOT NULL,
    payload        JSONB       NOT NULL,
    metadata       JSON        NOT NULL,
    recorded_at    BIGINT      NOT NULL,
    UNIQUE (stream_id, version)
);

CREATE TABLE es_streams (
    stream_id     TEXT COLLATE "C" PRIMARY KEY,
    version       BIGINT NOT NULL,
    last_position BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE es_commands (
    command_id  UUID   PRIMARY KEY,
    stream_id   TEXT   NOT NULL,
    fingerprint TEXT,
    outcome     JSON   NOT NULL,
    recorded_at BIGINT NOT NULL
);
