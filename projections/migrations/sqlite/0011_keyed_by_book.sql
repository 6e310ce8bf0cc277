-- Activity and interactions keyed by book first. Both tables were keyed member first (and
-- activity by a composite text id as well), while their bulk arrives book by book (an import
-- posts a book's reviews together): every row of a million-rating catch-up landed on a random
-- page of each tree, and writing those pages bound both projections. Book first, those rows lie
-- together; the one member-first index of each table serves the member's reads and carries the
-- key. Both projections replay the log into their new tables; the other projections keep their
-- place.
--
-- Activity: a member has at most one review, one rating and one like per book, so
-- `(book_id, kind, user_id)` is unique; a review posted again after a deletion takes the row over
-- (the deleted one is not shown anyway). Seq, the global position of the event that made the
-- item, is unique per item, so the feed orders by it alone.
DROP TABLE rm_activity;
CREATE TABLE rm_activity (
    book_id     TEXT    NOT NULL,
    -- `review`, `rating` or `like`.
    kind        TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    -- The review's or the rating's stars; NULL for a like.
    rating      INTEGER,
    review_id   TEXT,
    -- The start of a review's text; NULL once the review is deleted.
    excerpt     TEXT,
    -- False once the review is deleted or the like taken back.
    live        BOOLEAN NOT NULL,
    -- When the item was recorded (a new rating or a new like replaces the time).
    at          INTEGER NOT NULL,
    -- The global position of the event that made the item: feed order and its cursor.
    seq         INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    PRIMARY KEY (book_id, kind, user_id)
) WITHOUT ROWID;
-- A member's activity, newest first; the entries carry the key (book_id, kind) too.
CREATE INDEX rm_activity_user ON rm_activity (user_id, live, seq);
-- Interactions: one row per member and book; a review's row is found among its book's rows.
DROP TABLE rm_interactions;
CREATE TABLE rm_interactions (
    book_id       TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    rating        INTEGER,
    review_id     TEXT,
    review_rating INTEGER,
    liked         BOOLEAN NOT NULL DEFAULT FALSE,
    views         INTEGER NOT NULL DEFAULT 0,
    updated_at    INTEGER NOT NULL,
    position      INTEGER NOT NULL,
    PRIMARY KEY (book_id, user_id)
) WITHOUT ROWID;
-- A member's interactions, by book.
CREATE INDEX rm_interactions_user ON rm_interactions (user_id, book_id);

-- The two projections replay the log into the new tables (social's other tables keep their rows:
-- every write is guarded by position, so the replay leaves them as they are). A rebuild that was
-- under way started from the old layout and starts again.
DROP TABLE IF EXISTS rm_activity__rebuild;
DROP TABLE IF EXISTS rm_follows__rebuild;
DROP TABLE IF EXISTS rm_member_privacy__rebuild;
DROP TABLE IF EXISTS rm_interactions__rebuild;
DELETE FROM rm_checkpoints WHERE projection IN ('social__rebuild', 'interactions__rebuild');
UPDATE rm_checkpoints SET position = 0 WHERE projection IN ('social', 'interactions');
