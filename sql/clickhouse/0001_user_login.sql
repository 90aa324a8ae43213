-- The replica of PostgreSQL's user_login, written by the consumer (src/sink.ts).
--
-- Placeholders, substituted by src/clickhouse-migrate.ts from values it validated itself:
--   {{database}}         CLICKHOUSE_DATABASE (letters, digits, '_' only — checked by config.ts)
--   {{event_time_type}}  DateTime64(6, 'UTC') on ClickHouse >= 20.1 (keeps microseconds),
--                        DateTime('UTC') before (whole seconds; 18.16 has no DateTime64)
--
-- ReplacingMergeTree ORDER BY id: a row that reaches ClickHouse twice (a race the consumer's
-- existence check cannot see) collapses into one at the next merge. No PARTITION BY, on purpose:
-- rows are only ever replaced within a partition, so one partition guarantees it.
-- 'UTC' pins the time zone, so the wall-clock digits of a PostgreSQL TIMESTAMP read back unchanged
-- whatever the server's time zone.
-- kafka_partition / kafka_offset / ingested_at say where and when a row came in; ingested_at is
-- written by the consumer (18.16 does not apply DEFAULTs to fields a JSONEachRow row omits).
CREATE TABLE IF NOT EXISTS {{database}}.user_login
(
    id              UInt64,
    username        Nullable(String),
    event_type      Nullable(String),
    event_time      Nullable({{event_time_type}}),
    kafka_partition UInt32,
    kafka_offset    UInt64,
    ingested_at     DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY id;
