// Issue 11 — every PostgreSQL type of the mapping, through the whole pipeline into ClickHouse
// 18.16 (the local stack), value for value: extremes, NULLs, Unicode, empty arrays, NaN and
// infinities, microseconds, time zones. Each column's PostgreSQL text is compared with what
// ClickHouse returns, by the rule of README "Types" for 18.16 (the same values on a current
// ClickHouse: test/clickhouse-current/). Values 18.16 cannot hold are dead-lettered with the
// reason, and verify reports them as such.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chQuery, testLogger } from '../support/clickhouse.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { withPg } from '../support/pg.js';
import { converged, startPipeline, type Pipeline } from '../support/pipeline.js';
import { migrateAll } from '../support/streamer.js';
import { waitFor } from '../support/wait.js';
import { EVERY_TYPE_DDL, EVERY_TYPE_ROWS } from '../support/every-type.js';

/**
 * Per column: PostgreSQL's text of the value, and ClickHouse 18.16's, each as SQL giving text (or
 * null for NULL). What differs between them is the documented 18.16 rule: booleans as 1/0,
 * timestamps in whole seconds (UTC), arrays printed [..] — nothing else.
 */
const COLUMNS: Array<[string, string, string]> = [
  ['c_int2', 'c_int2::text', 'toString(c_int2)'],
  ['c_int4', 'c_int4::text', 'toString(c_int4)'],
  ['c_int8', 'c_int8::text', 'toString(c_int8)'],
  ['c_dec', 'c_dec::text', 'toString(c_dec)'],
  ['c_num', 'c_num::text', 'c_num'],
  ['c_real', 'c_real::text', 'c_real'],
  ['c_double', 'c_double::text', 'c_double'],
  ['c_text', 'c_text', 'c_text'],
  ['c_varchar', 'c_varchar', 'c_varchar'],
  ['c_char', 'c_char::text', 'c_char'],
  ['c_bool', 'c_bool::int::text', 'toString(c_bool)'],
  ['c_uuid', 'c_uuid::text', 'toString(c_uuid)'],
  // (18.16 prints the epoch as 0000-00-00 [00:00:00]: the value is 0, as toUInt16/toUInt32 show.)
  ['c_date', 'c_date::text', "if(toUInt16(c_date) = 0, '1970-01-01', toString(c_date))"],
  ['c_ts', "to_char(c_ts, 'YYYY-MM-DD HH24:MI:SS')", "if(toUInt32(c_ts) = 0, '1970-01-01 00:00:00', toString(c_ts))"],
  ['c_tstz', "to_char(c_tstz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')", "if(toUInt32(c_tstz) = 0, '1970-01-01 00:00:00', toString(c_tstz))"],
  ['c_time', 'c_time::text', 'c_time'],
  ['c_interval', 'c_interval::text', 'c_interval'],
  ['c_json', 'c_json::text', 'c_json'],
  ['c_jsonb', 'c_jsonb::text', 'c_jsonb'],
  ['c_bytea', 'c_bytea::text', 'c_bytea'],
  // Arrays: the elements (JSON on both sides, compared as values), NULL by the companion column.
  ['c_ints', 'array_to_json(c_ints)', 'c_ints'],
  ['c_texts', 'array_to_json(c_texts)', 'c_texts'],
  ['c_mood', 'c_mood::text', 'toString(c_mood)'],
  ['c_inet', 'c_inet::text', 'c_inet'],
  ['c_cidr', 'c_cidr::text', 'c_cidr'],
];

let iso: Isolated;
let pipeline: Pipeline;
beforeAll(async () => {
  iso = await isolate({ STREAMER_TABLES: 'every_type', SWEEP_INTERVAL_MS: '3600000' });
  await withPg(iso.config, (c) => c.query(EVERY_TYPE_DDL));
  await migrateAll(iso.config, testLogger(iso.config));
  pipeline = await startPipeline(iso.config);
});
afterAll(async () => {
  await pipeline?.stop();
  await iso?.cleanup();
});

describe('every type, value for value (ClickHouse 18.16)', () => {
  it('ClickHouse has the types of README "Types" for 18.16', async () => {
    const types = await chQuery<{ name: string; type: string }>(iso.config, `SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'every_type' AND NOT startsWith(name, '_')`);
    expect(Object.fromEntries(types.map((t) => [t.name, t.type]))).toEqual({
      id: 'Int32',
      c_int2: 'Nullable(Int16)',
      c_int4: 'Nullable(Int32)',
      c_int8: 'Nullable(Int64)',
      c_dec: 'Nullable(Decimal(12, 2))',
      c_num: 'Nullable(String)',
      c_real: 'Nullable(String)',
      c_double: 'Nullable(String)',
      c_text: 'Nullable(String)',
      c_varchar: 'Nullable(String)',
      c_char: 'Nullable(String)',
      c_bool: 'Nullable(UInt8)',
      c_uuid: 'Nullable(UUID)',
      c_date: 'Nullable(Date)',
      c_ts: "Nullable(DateTime('UTC'))",
      c_tstz: "Nullable(DateTime('UTC'))",
      c_time: 'Nullable(String)',
      c_interval: 'Nullable(String)',
      c_json: 'Nullable(String)',
      c_jsonb: 'Nullable(String)',
      c_bytea: 'Nullable(String)',
      c_ints: 'Array(Nullable(Int32))',
      c_ints__is_null: 'UInt8',
      c_texts: 'Array(Nullable(String))',
      c_texts__is_null: 'UInt8',
      c_mood: 'Nullable(String)',
      c_inet: 'Nullable(String)',
      c_cidr: 'Nullable(String)',
    });
  });

  it('round-trips every column of every row; updates and deletes too; verify OK', async () => {
    await withPg(iso.config, (c) => c.query(EVERY_TYPE_ROWS));
    await waitFor('9 rows', async () => ((await chQuery<{ n: string }>(iso.config, 'SELECT toString(count()) AS n FROM every_type_current'))[0]?.n === '9' ? true : undefined));
    await withPg(iso.config, (c) => c.query(`UPDATE every_type SET c_texts = '{x,NULL}', c_double = '-2.5e-310', c_ints = NULL WHERE id = 2; DELETE FROM every_type WHERE id = 4`));
    await waitFor('the update and the delete', async () => {
      const [r] = await chQuery<{ gone: number; updated: number }>(iso.config, "SELECT countIf(id = 4) = 0 AS gone, countIf(c_double = '-2.5e-310') = 1 AS updated FROM every_type_current");
      return r?.gone === 1 && r.updated === 1 ? true : undefined;
    });
    const pg = (await withPg(iso.config, (c) => c.query(`SELECT id, ${COLUMNS.map(([n, p]) => `${p} AS ${n}`).join(', ')} FROM every_type ORDER BY id`))).rows;
    const ch = (
      await chQuery<Record<string, unknown>>(iso.config, `SELECT id, ${COLUMNS.map(([n, , c]) => `${c} AS ${n}`).join(', ')}, c_ints__is_null, c_texts__is_null FROM every_type_current ORDER BY id`)
    ).map(({ c_ints__is_null, c_texts__is_null, ...r }): Record<string, unknown> => ({ ...r, c_ints: c_ints__is_null === 1 ? null : r.c_ints, c_texts: c_texts__is_null === 1 ? null : r.c_texts }));
    expect(ch.map((r) => r.id)).toEqual(pg.map((r) => r.id));
    for (const [i, p] of pg.entries()) {
      for (const [name] of COLUMNS) expect([p.id, name, ch[i]?.[name]]).toEqual([p.id, name, p[name]]);
    }
    const report = await converged(iso.config);
    expect([report.postgresRows, report.clickhouseRows]).toEqual([8, 8]);
    // Spot checks of what the rule above means.
    expect(pg.find((r) => r.id === 2)).toMatchObject({ c_tstz: '2024-03-09 21:00:00', c_ts: '2105-12-31 23:59:59', c_double: '-2.5e-310', c_texts: ['x', null], c_ints: null });
    expect(ch.find((r) => r.id === 1)).toMatchObject({ c_int8: '-9223372036854775808', c_num: '-123456789012345678901234567890.123456789012', c_bytea: '\\x00ff', c_char: 'ab' });
  });

  it('a value 18.16 cannot hold is dead-lettered with its reason, and verify says so', async () => {
    await withPg(iso.config, (c) => c.query(`INSERT INTO every_type (id, c_date) VALUES (10, '1969-12-31')`));
    const [dead] = await waitFor('the dead letter', async () => {
      const rows = await chQuery<{ key: string; reason: string }>(iso.config, 'SELECT key, reason FROM streamer_dead_letters');
      return rows.length > 0 ? rows : undefined;
    });
    expect(dead).toEqual({ key: '10', reason: 'c_date: 1969-12-31 is outside what Date can store (1970-01-01 to 2105-12-31)' });
    const v = await converged(iso.config);
    expect([v.ok, v.deadLettered, v.tables[0]?.examples.deadLettered]).toEqual([true, 1, ['10']]);
  });
});
