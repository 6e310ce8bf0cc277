-- The book club (the `club` projection): clubs, members, voting rounds with their nominations and
-- ballots, and discussion threads with their replies. Rows are fed by the clubs' and threads'
-- streams; every row carries `position`, the global position of the last event applied to it,
-- and every write is guarded by it, so replaying an event changes nothing. Times are microseconds
-- since the epoch.
CREATE TABLE rm_clubs (
    club_id      TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL,
    visibility   TEXT    NOT NULL,
    owner_id     TEXT    NOT NULL,
    write_ins    BOOLEAN NOT NULL,
    current_book TEXT,
    created_at   INTEGER NOT NULL,
    -- The global position of `ClubCreated`: listing order.
    seq          INTEGER NOT NULL,
    position     INTEGER NOT NULL
);
CREATE INDEX rm_clubs_seq ON rm_clubs (seq, club_id);

-- Members who left keep their row (`active` false), so a replayed join cannot bring them back.
CREATE TABLE rm_club_members (
    club_id   TEXT    NOT NULL,
    user_id   TEXT    NOT NULL,
    -- `owner`, `moderator` or `member`.
    role      TEXT    NOT NULL,
    active    BOOLEAN NOT NULL,
    joined_at INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    position  INTEGER NOT NULL,
    PRIMARY KEY (club_id, user_id)
);
CREATE INDEX rm_club_members_seq ON rm_club_members (club_id, active, seq, user_id);

CREATE TABLE rm_club_rounds (
    round_id          TEXT    PRIMARY KEY,
    club_id           TEXT    NOT NULL,
    -- `open` or `closed`.
    status            TEXT    NOT NULL,
    method            TEXT    NOT NULL,
    opened_at         INTEGER NOT NULL,
    nominations_close INTEGER NOT NULL,
    voting_closes     INTEGER NOT NULL,
    max_nominations   INTEGER NOT NULL,
    hide_results      BOOLEAN NOT NULL,
    closed_at         INTEGER,
    winner            TEXT,
    tie_break         TEXT,
    -- The full count `RoundClosed` recorded, as JSON.
    tally             TEXT,
    seq               INTEGER NOT NULL,
    position          INTEGER NOT NULL
);
CREATE INDEX rm_club_rounds_club ON rm_club_rounds (club_id, seq, round_id);
-- The scheduler: open rounds by voting deadline.
CREATE INDEX rm_club_rounds_due ON rm_club_rounds (status, voting_closes, round_id);

-- In nomination order (`seq`, the global position of `BookNominated`): the order ties break by.
CREATE TABLE rm_club_nominations (
    round_id  TEXT    NOT NULL,
    book_id   TEXT    NOT NULL,
    club_id   TEXT    NOT NULL,
    member_id TEXT    NOT NULL,
    at        INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (round_id, book_id)
);
CREATE INDEX rm_club_nominations_seq ON rm_club_nominations (round_id, seq);

-- One row per member per round: the member's last ballot (`choices` as a JSON array).
CREATE TABLE rm_club_ballots (
    round_id     TEXT    NOT NULL,
    member_id    TEXT    NOT NULL,
    club_id      TEXT    NOT NULL,
    choices      TEXT    NOT NULL,
    first_choice TEXT    NOT NULL,
    cast_at      INTEGER NOT NULL,
    position     INTEGER NOT NULL,
    PRIMARY KEY (round_id, member_id)
);
CREATE INDEX rm_club_ballots_first ON rm_club_ballots (round_id, first_choice);

CREATE TABLE rm_threads (
    thread_id     TEXT    PRIMARY KEY,
    club_id       TEXT    NOT NULL,
    title         TEXT    NOT NULL,
    author_id     TEXT    NOT NULL,
    content       TEXT,
    book_id       TEXT,
    chapter       TEXT,
    spoiler       BOOLEAN NOT NULL,
    removed       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    INTEGER NOT NULL,
    edited_at     INTEGER,
    reply_count   INTEGER NOT NULL DEFAULT 0,
    seq           INTEGER NOT NULL,
    last_position INTEGER NOT NULL
);
CREATE INDEX rm_threads_club ON rm_threads (club_id, seq, thread_id);

CREATE TABLE rm_thread_replies (
    reply_id   TEXT    PRIMARY KEY,
    thread_id  TEXT    NOT NULL,
    author_id  TEXT    NOT NULL,
    -- NULL once deleted or removed.
    content    TEXT,
    -- `live`, `deleted` or `removed`.
    status     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    edited_at  INTEGER,
    seq        INTEGER NOT NULL,
    position   INTEGER NOT NULL
);
CREATE INDEX rm_thread_replies_thread ON rm_thread_replies (thread_id, seq, reply_id);
