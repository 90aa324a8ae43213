-- Finding work costs O(pending rows), not O(table): a partial index over the unsent rows only,
-- in id order (the claim reads them oldest first). `IS NOT TRUE` rather than `NOT sent_to_kafka`
-- so that a row whose flag is NULL (inserted with an explicit NULL on an adopted table) is still
-- sent instead of being skipped forever. The claim query uses exactly this predicate.
-- Built inside the migration's transaction: on a large live table the build blocks writes to
-- user_login for its duration (a few seconds per ten million rows).
CREATE INDEX IF NOT EXISTS user_login_pending_idx
    ON user_login (id)
    WHERE sent_to_kafka IS NOT TRUE;
