-- The insert trigger notifies for at most one transaction per 10 ms.
--
-- Why: a transaction that has called NOTIFY holds PostgreSQL's cluster-wide notify lock from its
-- pre-commit through its WAL flush, so notifying transactions commit one at a time. On a durable
-- server (fsync on) that capped the application at ~6,800 single-row INSERT transactions/s here,
-- whatever the number of clients (18,200/s without the trigger at 8 clients; README "Trigger").
--
-- How: the first transaction of each 10 ms bucket of wall-clock time takes a transaction-level
-- advisory lock on that bucket and notifies; the others of the same bucket see the lock taken and
-- do not. The lock is only tried, never waited for, and it is released when its transaction ends.
-- Advisory locks are per database, and the two-key form never meets the migrator's one-key lock.
--
-- What it costs: nothing is lost — NOTIFY is only a wake-up, and the rows are read from the
-- table. A row whose transaction did not notify is found by the producer's pass that the
-- bucket's notifier triggers (if it committed by then), by the next notification, by the
-- producer's follow-up pass shortly after every pass that published rows, or at worst by the
-- periodic sweep (SWEEP_INTERVAL_MS).
CREATE OR REPLACE FUNCTION streamer_notify_user_login_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_try_advisory_xact_lock(
        1937011301, -- 'stre' as four big-endian bytes: the streamer's key space
        (floor(extract(epoch FROM clock_timestamp()) * 100)::bigint % 2000000000)::int
    ) THEN
        PERFORM pg_notify('streamer_user_login', TG_OP);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS streamer_user_login_inserted ON user_login;
CREATE TRIGGER streamer_user_login_inserted
    AFTER INSERT ON user_login
    FOR EACH STATEMENT EXECUTE FUNCTION streamer_notify_user_login_inserted();
