-- The book club (Postgres; the `club` projection): clubs, members, voting rounds with their nominations and
-- ballots, and discussion threads with their replies. Rows are fed by the clubs' and threads'
-- streams; every row carries `position`, the global position of the last event applied to it,
-- and every write is guarded by it, so replaying an event changes nothing. Times are microseconds
-- since the epoch.
CREATE TABLE rm_clubs (
    club_id      TEXT COLLATE "C" PRIMARY KEY,
    name         TEXT    NOT NULL,
    visibility   TEXT    NOT NULL,
    owner_id     TEXT COLLATE "C" NOT NULL,
    write_ins    BOOLEAN NOT NULL,
    current_book TEXT COLLATE "C",
    created_at   BIGINT  NOT NULL,
    -- The global position of `ClubCreated`: listing order.
    seq          BIGINT  NOT NULL,
    position     BIGINT  NOT NULL
);
CREATE INDEX rm_clubs_seq ON rm_clubs (seq, club_id);

-- Members who left keep their row (`active` false), so a replayed join cannot bring them back.
CREATE TABLE rm_club_members (
    club_id   TEXT COLLATE "C" NOT NULL,
    user_id   TEXT COLLATE "C" NOT NULL,
    -- `owner`, `moderator` or `member`.
    role      TEXT    NOT NULL,
    active    BOOLEAN NOT NULL,
    joined_at BIGINT  NOT NULL,
    seq       BIGINT  NOT NULL,
    position  BIGINT  NOT NULL,
    PRIMARY KEY (club_id, user_id)
);
CREATE INDEX rm_club_members_seq ON rm_club_members (club_id, active, seq, user_id);

CREATE TABLE rm_club_rounds (
    round_id          TEXT COLLATE "C" PRIMARY KEY,
    club_id           TEXT COLLATE "C" NOT NULL,
    -- `open` or `closed`.
    status            TEXT COLLATE "C" NOT NULL,
    method            TEXT    NOT NULL,
    opened_at         BIGINT  NOT NULL,
    nominations_close BIGINT  NOT NULL,
    voting_closes     BIGINT  NOT NULL,
    max_nominations   BIGINT  NOT NULL,
    hide_results      BOOLEAN NOT NULL,
    closed_at         BIGINT,
    winner            TEXT COLLATE "C",
    tie_break         TEXT,
    -- The full count `RoundClosed` recorded, as JSON.
    tally             TEXT,
    seq               BIGINT  NOT NULL,
    position          BIGINT  NOT NULL
);
CREATE INDEX rm_club_rounds_club ON rm_club_rounds (club_id, seq, round_id);
-- The scheduler: open rounds by voting deadline.
CREATE INDEX rm_club_rounds_due ON rm_club_rounds (status, voting_closes, round_id);

-- In nomination order (`seq`, the global position of `BookNominated`): the order ties break by.
CREATE TABLE rm_club_nominations (
    round_id  TEXT COLLATE "C" NOT NULL,
    book_id   TEXT COLLATE "C" NOT NULL,
    club_id   TEXT COLLATE "C" NOT NULL,
    member_id TEXT COLLATE "C" NOT NULL,
    at        BIGINT  NOT NULL,
    seq       BIGINT  NOT NULL,
    PRIMARY KEY (round_id, book_id)
);
CREATE INDEX rm_club_nominations_seq ON rm_club_nominations (round_id, seq);

-- One row per member per round: the member's last ballot (`choices` as a JSON array).
CREATE TABLE rm_club_ballots (
    round_id     TEXT COLLATE "C" NOT NULL,
    member_id    TEXT COLLATE "C" NOT NULL,
    club_id      TEXT COLLATE "C" NOT NULL,
    choices      TEXT    NOT NULL,
    first_choice TEXT COLLATE "C" NOT NULL,
    cast_at      BIGINT  NOT NULL,
    position     BIGINT  NOT NULL,
    PRIMARY KEY (round_id, member_id)
);
CREATE INDEX rm_club_ballots_first ON rm_club_ballots (round_id, first_choice);

CREATE TABLE rm_threads (
    thread_id     TEXT COLLATE "C" PRIMARY KEY,
    club_id       TEXT COLLATE "C" NOT NULL,
    title         TEXT    NOT NULL,
    author_id     TEXT COLLATE "C" NOT NULL,
    content       TEXT,
    book_id       TEXT COLLATE "C",
    chapter       TEXT,
    spoiler       BOOLEAN NOT NULL,
    removed       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL,
    edited_at     BIGINT,
    reply_count   BIGINT  NOT NULL DEFAULT 0,
    seq           BIGINT  NOT NULL,
    last_position BIGINT  NOT NULL
);
CREATE INDEX rm_threads_club ON rm_threads (club_id, seq, thread_id);

CREATE TABLE rm_thread_replies (
    reply_id   TEXT COLLATE "C" PRIMARY KEY,
    thread_id  TEXT COLLATE "C" NOT NULL,
    author_id  TEXT COLLATE "C" NOT NULL,
    -- NULL once deleted or removed.
    content    TEXT,
    -- `live`, `deleted` or `removed`.
    status     TEXT COLLATE "C" NOT NULL,
    created_at BIGINT  NOT NULL,
    edited_at  BIGINT,
    seq        BIGINT  NOT NULL,
    position   BIGINT  NOT NULL
);
CREATE INDEX rm_thread_replies_thread ON rm_thread_replies (thread_id, seq, reply_id);
