-- Circulation (the `lending` projection): the copies of each book, loans and holds. Rows are fed
-- by two streams each, a book's lending stream and the member's stream (the slot a borrow or hold
-- took), so a row's guard is `position`, the global position of the last event applied to it,
-- not a stream version. Times are microseconds since the epoch.
CREATE TABLE rm_copies (
    copy_id  TEXT    PRIMARY KEY,
    book_id  TEXT    NOT NULL,
    barcode  TEXT,
    status   TEXT    NOT NULL,
    loan_id  TEXT,
    hold_id  TEXT,
    -- The global position of the copy's `CopyAdded`: registration order.
    seq      INTEGER NOT NULL,
    added_at INTEGER NOT NULL,
    position INTEGER NOT NULL
);
CREATE INDEX rm_copies_book ON rm_copies (book_id, seq);

CREATE TABLE rm_loans (
    loan_id                TEXT    PRIMARY KEY,
    book_id                TEXT    NOT NULL,
    user_id                TEXT    NOT NULL,
    copy_id                TEXT,
    status                 TEXT    NOT NULL,
    requested_at           INTEGER NOT NULL,
    checked_out_at         INTEGER,
    due_at                 INTEGER NOT NULL,
    returned_at            INTEGER,
    renewals               INTEGER NOT NULL DEFAULT 0,
    overdue                BOOLEAN NOT NULL DEFAULT FALSE,
    member_flagged_overdue BOOLEAN NOT NULL DEFAULT FALSE,
    member_slot_held       BOOLEAN NOT NULL DEFAULT FALSE,
    implicit_copies        INTEGER NOT NULL DEFAULT 0,
    position               INTEGER NOT NULL
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
    hold_id          TEXT    PRIMARY KEY,
    book_id          TEXT    NOT NULL,
    user_id          TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    requested_at     INTEGER NOT NULL,
    placed_at        INTEGER,
    -- The global position of the hold's `HoldPlaced`: queue order.
    queue_seq        INTEGER,
    copy_id          TEXT,
    pickup_until     INTEGER,
    ended_at         INTEGER,
    loan_id          TEXT,
    member_slot_held BOOLEAN NOT NULL DEFAULT FALSE,
    implicit_copies  INTEGER NOT NULL DEFAULT 0,
    position         INTEGER NOT NULL
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
