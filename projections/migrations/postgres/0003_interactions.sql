-- What members did with books, as the recommender counts it: one row per member and book, fed by
-- their reviews (review_id, review_rating) and their interactions (rating without a review, like,
-- views). `position` is the global position of the last event applied to the row.
CREATE TABLE rm_interactions (
    user_id       TEXT COLLATE "C" NOT NULL,
    book_id       TEXT COLLATE "C" NOT NULL,
    rating        BIGINT,
    review_id     TEXT COLLATE "C",
    review_rating BIGINT,
    liked         BOOLEAN NOT NULL DEFAULT FALSE,
    views         BIGINT  NOT NULL DEFAULT 0,
    updated_at    BIGINT  NOT NULL,
    position      BIGINT  NOT NULL,
    PRIMARY KEY (user_id, book_id)
);
CREATE INDEX rm_interactions_review ON rm_interactions (book_id, review_id);

-- Trained recommendation models (not a projection: training writes them, `quire recs train` or
-- the schedule). The newest one is served; a few older ones are kept for comparison.
CREATE TABLE recs_models (
    version    BIGINT PRIMARY KEY,
    covers     BIGINT NOT NULL,
    trained_at BIGINT NOT NULL,
    algorithm  TEXT   NOT NULL,
    params     TEXT   NOT NULL,
    users      TEXT   NOT NULL,
    books      TEXT   NOT NULL,
    model      BYTEA  NOT NULL,
    train_secs DOUBLE PRECISION NOT NULL
);
