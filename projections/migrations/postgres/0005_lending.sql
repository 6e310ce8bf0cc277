-- Circulation (Postgres; the `lending` projection): the copies of each book, loans and holds.
-- Rows are fed by two streams each, a book's lending stream and the member's stream (the slot a
-- borrow or hold took), so a row's guard is `position`, the global position of the last event
-- applied to it, not a stream version. Ids are text in the C collation (byte order, as in
-- SQLite); times are microseconds since the epoch.
CREATE TABLE rm_copies (
    copy_id  TEXT COLLATE "C" PRIMARY KEY,
    book_id  TEXT COLLATE "C" NOT NULL,
    barcode  TEXT,
    status   TEXT NOT NULL,
    loan_id  TEXT COLLATE "C",
    hold_id  TEXT COLLATE "C",
    -- The global position of the copy's `CopyAdded`: registration order.
    seq      BIGINT NOT NULL,
    added_at BIGINT NOT NULL,
    position BIGINT NOT NULL
);
CREATE INDEX rm_copies_book ON rm_copies (book_id, seq);

CREATE TABLE rm_loans (
    loan_id                TEXT COLLATE "C" PRIMARY KEY,
    book_id                TEXT COLLATE "C" NOT NULL,
    user_id                TEXT COLLATE "C" NOT NULL,
    copy_id                TEXT COLLATE "C",
    status                 TEXT COLLATE "C" NOT NULL,
    requested_at           BIGINT  NOT NULL,
    checked_out_at         BIGINT,
    due_at                 BIGINT  NOT NULL,
    returned_at            BIGINT,
    renewals               BIGINT  NOT NULL DEFAULT 0,
    overdue                BOOLEAN NOT NULL DEFAULT FALSE,
    member_flagged_overdue BOOLEAN NOT NULL DEFAULT FALSE,
    member_slot_held       BOOLEAN NOT NULL DEFAULT FALSE,
    implicit_copies        BIGINT  NOT NULL DEFAULT 0,
    position               BIGINT  NOT NULL
);
-- Listings, newest first: a member's, a book's, everyone's.
CREATE INDEX rm_loans_user ON rm_loans (user_id, checked_out_at, loan_id);
CREATE INDEX rm_loans_book ON rm_loans (book_id, checked_out_at, loan_id);
CREATE INDEX rm_loans_checked_out ON rm_loans (checked_out_at, loan_id);
-- The scheduler: open loans by whether they are recorded overdue and by due date, borrows in
-- progress by request time.
CREATE INDEX rm_loans_due ON rm_loans (status, overdue, due_at, loan_id);
CREATE INDEX rm_loans_requested ON rm_loans (status, requested_at, loan_id);
-- Slots still held by loans that ended (few rows: most are released right away).
CREATE INDEX rm_loans_slot_held ON rm_loans (status, returned_at, loan_id) WHERE member_slot_held;

CREATE TABLE rm_holds (
    hold_id          TEXT COLLATE "C" PRIMARY KEY,
    book_id          TEXT COLLATE "C" NOT NULL,
    user_id          TEXT COLLATE "C" NOT NULL,
    status           TEXT COLLATE "C" NOT NULL,
    requested_at     BIGINT  NOT NULL,
    placed_at        BIGINT,
    -- The global position of the hold's `HoldPlaced`: queue order.
    queue_seq        BIGINT,
    copy_id          TEXT COLLATE "C",
    pickup_until     BIGINT,
    ended_at         BIGINT,
    loan_id          TEXT COLLATE "C",
    member_slot_held BOOLEAN NOT NULL DEFAULT FALSE,
    implicit_copies  BIGINT  NOT NULL DEFAULT 0,
    position         BIGINT  NOT NULL
);
-- Listings and queues, in queue order: a book's, a member's, everyone's.
CREATE INDEX rm_holds_book ON rm_holds (book_id, queue_seq, hold_id);
CREATE INDEX rm_holds_user ON rm_holds (user_id, queue_seq, hold_id);
CREATE INDEX rm_holds_queue ON rm_holds (queue_seq, hold_id);
-- The scheduler: ready holds by pickup deadline, holds in progress by request time.
CREATE INDEX rm_holds_pickup ON rm_holds (status, pickup_until, hold_id);
CREATE INDEX rm_holds_requested ON rm_holds (status, requested_at, hold_id);
-- Slots still held by holds that ended.
CREATE INDEX rm_holds_slot_held ON rm_holds (status, ended_at, hold_id) WHERE member_slot_held;
