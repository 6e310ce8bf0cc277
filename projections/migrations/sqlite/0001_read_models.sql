-- Read models: books (with author and genre index tables), reviews with per-book rating stats,
-- users, and one checkpoint per projection. Ids are hyphenated lowercase uuids as text, so text
-- order is uuid order; times are microseconds since the epoch.
CREATE TABLE rm_checkpoints (
    projection    TEXT    PRIMARY KEY,
    position      INTEGER NOT NULL DEFAULT 0,
    updated_at    INTEGER NOT NULL,
    last_error    TEXT,
    last_error_at INTEGER
) WITHOUT ROWID;

CREATE TABLE rm_books (
    id             TEXT    PRIMARY KEY,
    title          TEXT    NOT NULL,
    title_sort     TEXT    NOT NULL,
    authors        TEXT    NOT NULL,
    genres         TEXT    NOT NULL,
    year_published INTEGER,
    isbn           TEXT,
    description    TEXT,
    summary        TEXT,
    summary_source TEXT,
    removed        BOOLEAN NOT NULL DEFAULT FALSE,
    version        INTEGER NOT NULL,
    added_at       INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX rm_books_title ON rm_books (title_sort, id);
CREATE INDEX rm_books_year ON rm_books (year_published, id);
CREATE INDEX rm_books_added ON rm_books (added_at, id);

CREATE TABLE rm_book_authors (
    author_key TEXT NOT NULL,
    book_id    TEXT NOT NULL,
    PRIMARY KEY (author_key, book_id)
) WITHOUT ROWID;
CREATE INDEX rm_book_authors_book ON rm_book_authors (book_id);

CREATE TABLE rm_book_genres (
    genre   TEXT NOT NULL,
    book_id TEXT NOT NULL,
    PRIMARY KEY (genre, book_id)
) WITHOUT ROWID;
CREATE INDEX rm_book_genres_book ON rm_book_genres (book_id);

CREATE TABLE rm_reviews (
    id         TEXT    PRIMARY KEY,
    book_id    TEXT    NOT NULL,
    member_id  TEXT    NOT NULL,
    rating     INTEGER NOT NULL,
    text       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    version    INTEGER NOT NULL
);
CREATE INDEX rm_reviews_book ON rm_reviews (book_id, created_at, id);

CREATE TABLE rm_book_stats (
    book_id TEXT    PRIMARY KEY,
    count   INTEGER NOT NULL DEFAULT 0,
    sum     INTEGER NOT NULL DEFAULT 0,
    r1      INTEGER NOT NULL DEFAULT 0,
    r2      INTEGER NOT NULL DEFAULT 0,
    r3      INTEGER NOT NULL DEFAULT 0,
    r4      INTEGER NOT NULL DEFAULT 0,
    r5      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE rm_users (
    id               TEXT    PRIMARY KEY,
    name             TEXT    NOT NULL,
    username         TEXT    UNIQUE,
    email            TEXT,
    role             TEXT    NOT NULL,
    password_hash    TEXT,
    favourite_genres TEXT    NOT NULL DEFAULT '[]',
    active           BOOLEAN NOT NULL DEFAULT TRUE,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    version          INTEGER NOT NULL
);
CREATE INDEX rm_users_created ON rm_users (created_at, id);
