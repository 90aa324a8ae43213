/**
 * A table with every PostgreSQL type of the mapping (README "Types") and rows of edge values that
 * ClickHouse 18.16 holds: extremes, NULLs, Unicode, empty arrays, NaN, infinities, -0, subnormal
 * floats, microseconds, time zones, and the characters a TabSeparated field escapes (row 4: a
 * quote, `\N`, a backslash, a carriage return, a tab; in a text and in an array). Used end to end
 * on 18.16 (test/integration/types-roundtrip) and on the current engine (test/clickhouse-current).
 */
export const EVERY_TYPE_DDL = `
  CREATE TYPE mood AS ENUM ('sad', 'ok', 'très content');
  CREATE TABLE every_type (
    id int PRIMARY KEY,
    c_int2 smallint, c_int4 integer, c_int8 bigint,
    c_dec numeric(12,2), c_num numeric,
    c_real real, c_double double precision,
    c_text text, c_varchar varchar(10), c_char char(5),
    c_bool boolean, c_uuid uuid, c_date date,
    c_ts timestamp, c_tstz timestamptz, c_time time, c_interval interval,
    c_json json, c_jsonb jsonb, c_bytea bytea,
    c_ints int[], c_texts text[], c_mood mood, c_inet inet, c_cidr cidr
  )`;

/** Rows of edge values (18.16 holds each; row 9 is NULL everywhere). */
export const EVERY_TYPE_ROWS = `
  INSERT INTO every_type VALUES
  (1, -32768, -2147483648, -9223372036854775808, -9999999999.99, '-123456789012345678901234567890.123456789012',
      '-3.4028235e38', '-1.7976931348623157e308', '', 'zoë', 'ab', false, '00000000-0000-0000-0000-000000000000',
      '1970-01-01', '1970-01-01 00:00:00', '1970-01-01 00:00:00+00', '00:00:00', '-1 year -2 mons +3 days 04:05:06.789',
      '{"a": [1, 2]}', '{"b": {"c": null}}', '\\x00ff', '{}', '{"", NULL, "a,b", "q\\"uote"}', 'sad', '::1', '10.0.0.0/8'),
  (2, 32767, 2147483647, 9223372036854775807, 9999999999.99, '0.000000000000000000000000000001',
      '3.4028235e38', '1.7976931348623157e308', E'🚀 日本語\\n\\ttab \\\\ back', '0123456789', 'abcde', true, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
      '2105-12-31', '2105-12-31 23:59:59.999999', '2024-03-10 02:30:00.000001+05:30', '23:59:59.999999', '1 day',
      '[]', '[]', '\\x', '{1,NULL,-3}', '{}', 'très content', '192.168.0.1/24', '::/0'),
  (3, 0, 0, 0, 0, 'NaN', 'NaN', 'NaN', 'x', NULL, NULL, NULL, NULL, '2000-02-29', '2000-02-29 12:00:00.5', '1999-12-31 23:59:59.999999-08', NULL, NULL,
      '  {"spaces" :  true }  ', NULL, NULL, NULL, NULL, 'ok', NULL, NULL),
  (4, 1, 1, 1, 1.5, '1.50', '-0', '-0', E'it''s \\\\N, \\\\ back, \\r cr, \\t tab', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
      E'{"it''s","back\\\\\\\\slash","tab\\there","\\\\\\\\N",NULL}', NULL, NULL, NULL),
  (5, NULL, NULL, NULL, NULL, 'Infinity', 'Infinity', '-Infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (6, NULL, NULL, NULL, NULL, NULL, '1.1', '0.1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (7, NULL, NULL, NULL, NULL, NULL, '1e-45', '5e-324', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (8, NULL, NULL, NULL, NULL, NULL, '0.30000001', '0.30000000000000004', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (9, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`;

