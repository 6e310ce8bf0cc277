-- Read models (Postgres; the tables may share a database with the event store, hence the rm_
-- prefix): books (with author and genre index tables), reviews with per-book rating stats, users,
-- and one checkpoint per projection. Ids are hyphenated lowercase uuids as text, so text order is
-- uuid order (key columns use the C collation: byte order, as in SQLite). Times are microseconds
-- since the epoch.
CREATE TABLE rm_checkpoints (
    projection    TEXT COLLATE "C" PRIMARY KEY,
    position      BIGINT NOT NULL DEFAULT 0,
    updated_at    BIGINT NOT NULL,
    last_error    TEXT,
    last_error_at BIGINT
);

CREATE TABLE rm_books (
    id             TEXT COLLATE "C" PRIMARY KEY,
    title          TEXT NOT NULL,
    title_sort     TEXT COLLATE "C" NOT NULL,
    authors        TEXT NOT NULL,
    genres         TEXT NOT NULL,
    year_published BIGINT,
    isbn           TEXT,
    description    TEXT,
    summary        TEXT,
    summary_source TEXT,
    removed        BOOLEAN NOT NULL DEFAULT FALSE,
    version        BIGINT NOT NULL,
    added_at       BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX rm_books_title ON rm_books (title_sort, id);
CREATE INDEX rm_books_year ON rm_books (year_published, id);
CREATE INDEX rm_books_added ON rm_books (added_at, id);

CREATE TABLE rm_book_authors (
    author_key TEXT COLLATE "C" NOT NULL,
    book_id    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (author_key, book_id)
);
CREATE INDEX rm_book_authors_book ON rm_book_authors (book_id);

CREATE TABLE rm_book_genres (
    genre   TEXT COLLATE "C" NOT NULL,
    book_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (genre, book_id)
);
CREATE INDEX rm_book_genres_book ON rm_book_genres (book_id);

CREATE TABLE rm_reviews (
    id         TEXT COLLATE "C" PRIMARY KEY,
    book_id    TEXT COLLATE "C" NOT NULL,
    member_id  TEXT NOT NULL,
    rating     BIGINT NOT NULL,
    text       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    version    BIGINT NOT NULL
);
CREATE INDEX rm_reviews_book ON rm_reviews (book_id, created_at, id);

CREATE TABLE rm_book_stats (
    book_id TEXT COLLATE "C" PRIMARY KEY,
    count   BIGINT NOT NULL DEFAULT 0,
    sum     BIGINT NOT NULL DEFAULT 0,
    r1      BIGINT NOT NULL DEFAULT 0,
    r2      BIGINT NOT NULL DEFAULT 0,
    r3      BIGINT NOT NULL DEFAULT 0,
    r4      BIGINT NOT NULL DEFAULT 0,
    r5      BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE rm_users (
    id               TEXT COLLATE "C" PRIMARY KEY,
    name             TEXT NOT NULL,
    username         TEXT COLLATE "C" UNIQUE,
    email            TEXT,
    role             TEXT NOT NULL,
    password_hash    TEXT,
    favourite_genres TEXT NOT NULL DEFAULT '[]',
    active           BOOLEAN NOT NULL DEFAULT TRUE,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    version          BIGINT NOT NULL
);
CREATE INDEX rm_users_created ON rm_users (created_at, id);
