-- Summaries with provenance, the review summary, and what the summary jobs need to find stale
-- summaries: the version of the last change to the book's own data and to its reviews.
ALTER TABLE rm_books ADD COLUMN summary_provenance TEXT;
ALTER TABLE rm_books ADD COLUMN summary_covers INTEGER;
ALTER TABLE rm_books ADD COLUMN review_summary TEXT;
ALTER TABLE rm_books ADD COLUMN review_summary_provenance TEXT;
ALTER TABLE rm_books ADD COLUMN review_summary_covers INTEGER;
ALTER TABLE rm_books ADD COLUMN content_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rm_books ADD COLUMN reviews_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rm_books ADD COLUMN reviews_changed_at INTEGER;
ALTER TABLE rm_books ADD COLUMN review_summary_at INTEGER;
-- Rows projected before this migration: their last change is at least as old as their version
-- (a rebuild of the books projection sets the exact values).
UPDATE rm_books SET content_version = version;
