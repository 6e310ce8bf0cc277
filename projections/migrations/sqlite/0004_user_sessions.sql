-- The stream version of the user's last event that ended their sessions (a new password, a
-- sign-out everywhere, a deactivation); 0 if none. Bearer tokens carry the epoch they were issued
-- in, and one older than this is refused. Rows projected before this migration keep 0 until a
-- rebuild.
ALTER TABLE rm_users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
