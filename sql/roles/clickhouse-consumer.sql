-- The consumer's least privileges in ClickHouse (20.5 and later, SQL access control; the server
-- must have access_management enabled for the admin running this). {{database}} is your
-- CLICKHOUSE_DATABASE. Run once after `streamer migrate`, then set CLICKHOUSE_USER and
-- CLICKHOUSE_PASSWORD of the consumer to this user:
--   clickhouse-client --multiquery < sql/roles/clickhouse-consumer.sql   (after replacing {{database}} and the password)
-- The consumer only checks which ids exist (SELECT) and inserts (INSERT), and records what it
-- dead-letters (INSERT into streamer_dead_letters); it also reads the column type of event_time
-- from system.columns, which needs no grant for a table it can see.
-- ClickHouse 18.16 (our test server) predates SQL users: there the same restriction is a
-- users.d/*.xml entry with <allow_databases> (database-level), as the test builds it.
CREATE USER IF NOT EXISTS streamer_consumer IDENTIFIED WITH sha256_password BY 'change-me';
GRANT SELECT, INSERT ON {{database}}.user_login TO streamer_consumer;
GRANT SELECT, INSERT ON {{database}}.streamer_dead_letters TO streamer_consumer;
