-- The producer's least privileges in PostgreSQL. Not a migration: run it once, as the owner of
-- user_login, after `streamer migrate` (which needs the owner's rights and runs as such), then
-- set the password and use this role in the producer's DATABASE_URL:
--   psql "$ADMIN_DATABASE_URL" -f sql/roles/postgres-producer.sql
--   psql "$ADMIN_DATABASE_URL" -c "ALTER ROLE streamer_producer PASSWORD '…'"
-- The producer reads the table, updates only the flag (SELECT … FOR UPDATE needs UPDATE on at
-- least one column, and the flag is that column), and writes its failure record. LISTEN needs no
-- privilege. The test test/integration/least-privilege.test.ts runs the producer as this role.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'streamer_producer') THEN
        CREATE ROLE streamer_producer LOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO streamer_producer;
GRANT SELECT, UPDATE (sent_to_kafka) ON user_login TO streamer_producer;
GRANT SELECT, INSERT, UPDATE ON streamer_failed_rows TO streamer_producer;
