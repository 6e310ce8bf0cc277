-- The event store: the global log, stream versions, and command outcomes for idempotency.
CREATE TABLE es_events (
    position       INTEGER PRIMARY KEY,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       TEXT    NOT NULL UNIQUE,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    recorded_at    INTEGER NOT NULL,
    UNIQUE (stream_id, version)
);

CREATE TABLE es_streams (
    stream_id     TEXT    PRIMARY KEY,
    version       INTEGER NOT NULL,
    last_position INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE es_commands (
    command_id  TEXT    PRIMARY KEY,
    stream_id   TEXT    NOT NULL,
    fingerprint TEXT,
    outcome     TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL
) WITHOUT ROWID;
