-- The social graph (the `social` projection): who follows whom, who keeps their activity private,
-- and the members' public activity (reviews, ratings without a review, likes) that feeds and
-- social recommendations are read from. Rows are fed by the users' and books' streams; every row
-- carries `position`, the global position of the last event applied to it, and every write is
-- guarded by it, so replaying an event changes nothing. Unfollows, unlikes and deleted reviews
-- keep their row (`active`/`live` false), so a replayed follow or like cannot bring them back.
-- Times are microseconds since the epoch. Privacy is filtered when reading, not when writing.
CREATE TABLE rm_follows (
    follower_id TEXT    NOT NULL,
    followee_id TEXT    NOT NULL,
    active      BOOLEAN NOT NULL,
    -- When the current follow was recorded.
    since       INTEGER NOT NULL,
    -- The global position of the current follow's `UserFollowed`: listing order.
    seq         INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
) WITHOUT ROWID;
-- Whom a member follows, and who follows a member, newest first.
CREATE INDEX rm_follows_following ON rm_follows (follower_id, active, seq, followee_id);
CREATE INDEX rm_follows_followers ON rm_follows (followee_id, active, seq, follower_id);

-- Only members who ever changed the setting have a row; no row means public.
CREATE TABLE rm_member_privacy (
    user_id  TEXT    PRIMARY KEY,
    private  BOOLEAN NOT NULL,
    position INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per activity item: `review:{review_id}`, `rating:{user}:{book}`, `like:{user}:{book}`.
CREATE TABLE rm_activity (
    activity_id TEXT    PRIMARY KEY,
    -- `review`, `rating` or `like`.
    kind        TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    book_id     TEXT    NOT NULL,
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
    position    INTEGER NOT NULL
) WITHOUT ROWID;
-- A member's activity, newest first: the feed reads it per followee, social recommendations per
-- followee and book.
CREATE INDEX rm_activity_user ON rm_activity (user_id, live, seq);
CREATE INDEX rm_activity_user_book ON rm_activity (user_id, book_id);
