-- A book's full text as its last BookTextSet recorded it: the SHA-256 that addresses it in the text
-- store, its size in bytes and where it came from. All NULL when the book has no text.
ALTER TABLE rm_books ADD COLUMN text_sha256 TEXT;
ALTER TABLE rm_books ADD COLUMN text_bytes BIGINT;
ALTER TABLE rm_books ADD COLUMN text_source TEXT;
