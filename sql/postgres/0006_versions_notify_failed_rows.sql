-- What every table's capture shares (src/capture/plans.ts installs the rest per table).

-- Versions: every change, and every publication of a row in the flag mode, takes one; a row's
-- versions increase in the order its changes commit (see plans.ts). ClickHouse keeps the newest.
-- MAXVALUE 2^53-1: a version is exact as a JSON number in every parser.
CREATE SEQUENCE IF NOT EXISTS streamer_version_seq MAXVALUE 9007199254740991;

-- NOTIFY is a wake-up hint, never the data: the payload is the table's id. Of the transactions
-- open at the same time, at most one per table per 10 ms notifies: it takes a transaction-level
-- advisory lock on that bucket of wall-clock time (never waiting) and notifies only if it got it.
-- The lock ends with its transaction, so transactions that follow one another each notify
-- (measured: 38,502 NOTIFYs for 40,001 single-row transactions at 1,000/s). A transaction that
-- has called NOTIFY holds PostgreSQL's cluster-wide notify lock through its WAL flush, so
-- notifying transactions commit one at a time: with fsync on, a NOTIFY per transaction capped an
-- application at ~6,800 single-row INSERT transactions/s here (README "Trigger"). A row whose
-- transaction did not notify is found by the pass the bucket's notification starts, the next
-- one, the producer's follow-up pass, or at worst the sweep. Key 1937011301 is 'stre', the
-- streamer's space; the migrator's one-key lock never meets this two-key form.
CREATE OR REPLACE FUNCTION streamer_notify(tbl text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_try_advisory_xact_lock(
        1937011301,
        ((floor(date_part('epoch', clock_timestamp()) * 100)::bigint % 2000000000)::int # hashtext(tbl))
    ) THEN
        PERFORM pg_notify('streamer', tbl);
    END IF;
END;
$$;

-- Rows Kafka can never accept (for example larger than the broker's max.message.bytes), per table
-- and key (the key as the Kafka key's text): they stop blocking the rows behind them and an
-- operator sees them (`streamer status`). Delete a record to have its row sent again.
DO $$
BEGIN
    IF to_regclass('streamer_failed_rows') IS NULL THEN
        CREATE TABLE streamer_failed_rows (
            table_name TEXT NOT NULL,
            key TEXT NOT NULL,
            error TEXT NOT NULL,
            failed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            attempts INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (table_name, key)
        );
    ELSIF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('streamer_failed_rows') AND attname = 'id' AND NOT attisdropped) THEN
        -- The shape of 0003 (user_login only): keep every record, under public.user_login.
        ALTER TABLE streamer_failed_rows ADD COLUMN table_name TEXT NOT NULL DEFAULT 'public.user_login', ADD COLUMN key TEXT;
        UPDATE streamer_failed_rows SET key = id::text;
        ALTER TABLE streamer_failed_rows DROP CONSTRAINT streamer_failed_rows_pkey;
        ALTER TABLE streamer_failed_rows DROP COLUMN id, ALTER COLUMN key SET NOT NULL, ALTER COLUMN table_name DROP DEFAULT;
        ALTER TABLE streamer_failed_rows ADD PRIMARY KEY (table_name, key);
    END IF;
END
$$;
