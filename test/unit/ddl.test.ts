// The ClickHouse DDL generated from a table spec, per server version, and what migrate does to a
// table that exists (chdb runs the same DDL on 26.7: test/clickhouse-current/).
import { describe, expect, it } from 'vitest';
import { chColumns, createTable, createView, legacyMigration, planTable, sameType } from '../../src/sink/ddl.js';
import { capabilities } from '../../src/tables/server.js';
import { spec } from './support/specs.js';

const OLD = capabilities({ major: 18, minor: 16 });
const CURRENT = capabilities({ major: 26, minor: 7 });
const userLogin = spec('public', 'user_login', [
  ['id', 'int4', { notNull: true }],
  ['username', 'text'],
  ['event_type', 'text'],
  ['event_time', 'timestamp'],
]);
const lines = (sql: string) => sql.split('\n').map((l) => l.trim());

describe('CREATE TABLE', () => {
  it('user_login on 18.16: ReplacingMergeTree(_version) ordered by the key, our columns last', () => {
    expect(createTable(userLogin, OLD, 'default')).toBe(
      [
        'CREATE TABLE IF NOT EXISTS `default`.`user_login`',
        '(',
        '    `id` Int32,',
        '    `username` Nullable(String),',
        '    `event_type` Nullable(String),',
        "    `event_time` Nullable(DateTime('UTC')),",
        '    `_version` UInt64,',
        '    `_deleted` UInt8,',
        '    `_kafka_partition` UInt32,',
        '    `_kafka_offset` UInt64,',
        "    `_ingested_at` DateTime('UTC')",
        ')',
        'ENGINE = ReplacingMergeTree(_version)',
        'ORDER BY (`id`)',
      ].join('\n'),
    );
  });

  it('on 26.7: is_deleted, microseconds, and the deduplication window for retried inserts', () => {
    const sql = lines(createTable(userLogin, CURRENT, 'default'));
    expect(sql).toContain("`event_time` Nullable(DateTime64(6, 'UTC')),");
    expect(sql).toContain('ENGINE = ReplacingMergeTree(_version, _deleted)');
    expect(sql).toContain('SETTINGS non_replicated_deduplication_window = 1000');
  });

  it('a composite key with quoted, mixed-case names; a nullable array gets its NULL flag column', () => {
    const s = spec('Sales', 'Order Items', [
      ['Order', 'int8', { notNull: true }],
      ['line no', 'int2', { notNull: true }],
      ['tags', '_text', { element: 'text' }],
    ], { key: ['Order', 'line no'] });
    expect(chColumns(s, OLD).slice(0, 4)).toEqual([
      { name: 'Order', type: 'Int64' },
      { name: 'line no', type: 'Int16' },
      { name: 'tags', type: 'Array(Nullable(String))' },
      { name: 'tags__is_null', type: 'UInt8' },
    ]);
    expect(lines(createTable(s, OLD, 'db'))).toContain('ORDER BY (`Order`, `line no`)');
    expect(createView(s, OLD, 'db')).toBe('CREATE VIEW IF NOT EXISTS `db`.`Order Items_current` AS\nSELECT `Order`, `line no`, `tags`, `tags__is_null`\n  FROM `db`.`Order Items` FINAL\n WHERE _deleted = 0');
  });
});

describe('planTable', () => {
  const existing = (caps = OLD) => chColumns(userLogin, caps);

  it('creates a missing table; leaves an equal one alone, also one made by another server version', () => {
    expect(planTable(userLogin, OLD, null)).toEqual({ kind: 'create' });
    expect(planTable(userLogin, OLD, existing())).toEqual({ kind: 'up-to-date' });
    // Made on 18.16, the server upgraded to 26.7: DateTime stays DateTime, the sink writes by the real type.
    expect(planTable(userLogin, CURRENT, existing(OLD))).toEqual({ kind: 'up-to-date' });
  });

  it('adds the columns added in PostgreSQL', () => {
    const wider = spec('public', 'user_login', [...userLogin.columns.map((c): [string, string, { notNull: boolean }] => [c.name, c.typname, { notNull: c.notNull }]), ['country', 'text']]);
    expect(planTable(wider, OLD, existing())).toEqual({ kind: 'add-columns', columns: [{ name: 'country', type: 'Nullable(String)' }] });
  });

  it('stops at what only an operator can decide: a type changed, a column gone', () => {
    const changed = spec('public', 'user_login', [['id', 'int8', { notNull: true }], ['username', 'text'], ['event_type', 'text']]);
    expect(planTable(changed, OLD, existing())).toEqual({
      kind: 'conflict',
      problems: [
        'column id is Int32 in ClickHouse, but its PostgreSQL type now maps to Int64',
        'column event_time is in ClickHouse but no longer replicated (dropped or renamed in PostgreSQL, or excluded)',
      ],
    });
  });

  it("moves f141f4e's table (no _version) into the new shape keeping every row, the old one kept aside", () => {
    const old = [
      { name: 'id', type: 'UInt64' },
      { name: 'username', type: 'Nullable(String)' },
      { name: 'event_type', type: 'Nullable(String)' },
      { name: 'event_time', type: "Nullable(DateTime('UTC'))" },
      { name: 'kafka_partition', type: 'UInt32' },
      { name: 'kafka_offset', type: 'UInt64' },
      { name: 'ingested_at', type: "DateTime('UTC')" },
    ];
    expect(planTable(userLogin, OLD, old)).toEqual({ kind: 'legacy', keep: ['id', 'username', 'event_type', 'event_time'] });
    const sql = legacyMigration(userLogin, OLD, 'default', old);
    expect(sql[0]).toBe('DROP TABLE IF EXISTS `default`.`user_login__streamer_new`');
    expect(sql[2]).toBe(
      'INSERT INTO `default`.`user_login__streamer_new` (`id`, `username`, `event_type`, `event_time`, `_version`, `_deleted`, `_kafka_partition`, `_kafka_offset`, `_ingested_at`) ' +
        "SELECT CAST(`id` AS Int32), CAST(`username` AS Nullable(String)), CAST(`event_type` AS Nullable(String)), CAST(`event_time` AS Nullable(DateTime('UTC'))), 0, 0, `kafka_partition`, `kafka_offset`, `ingested_at` FROM `default`.`user_login` FINAL",
    );
    expect(sql[3]).toBe('RENAME TABLE `default`.`user_login` TO `default`.`user_login__before_versions`, `default`.`user_login__streamer_new` TO `default`.`user_login`');
  });

  it('sameType ignores spacing and accepts the same PostgreSQL type as another version maps it', () => {
    expect(sameType("DateTime64(6,'UTC')", "DateTime64(6, 'UTC')")).toBe(true);
    expect(sameType('Nullable(UInt8)', 'Nullable(Bool)')).toBe(true);
    expect(sameType('Nullable(UInt8)', 'Bool')).toBe(false);
    expect(sameType('Int32', 'Int64')).toBe(false);
    // An enum column made on 18.16 (String) is the same column after an upgrade.
    expect(sameType('Nullable(String)', 'LowCardinality(Nullable(String))')).toBe(true);
    expect(sameType('String', 'LowCardinality(Nullable(String))')).toBe(false);
  });
});
