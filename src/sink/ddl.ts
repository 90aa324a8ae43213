/**
 * The ClickHouse side of a table spec: its table, its deduplicated view, and what `streamer
 * migrate` does to bring an existing table up to date. Generated from the spec and the server's
 * capabilities, with every identifier quoted.
 *
 *   CREATE TABLE db.`t` (<columns>, _version UInt64, _deleted UInt8, _kafka_partition UInt32,
 *                        _kafka_offset UInt64, _ingested_at DateTime('UTC'))
 *   ENGINE = ReplacingMergeTree(_version[, _deleted])  ORDER BY (<key columns>)
 *   CREATE VIEW db.`t_current` AS SELECT <columns> FROM db.`t` FINAL WHERE _deleted = 0
 *
 * ReplacingMergeTree keeps, per key, the row of the highest _version at merge time, and FINAL
 * does the same at query time: whatever order versions arrive, are redelivered or re-sent in, the
 * newest wins. `is_deleted` (23.2+) makes FINAL hide deleted keys by itself; on older servers (our
 * 18.16) the view does. No PARTITION BY: rows are only replaced within a partition.
 */
import { chIdent, chLiteral } from '../tables/identifiers.js';
import { mapColumn } from '../tables/pg-types.js';
import type { Capabilities } from '../tables/server.js';
import type { TableSpec } from '../tables/spec.js';

export interface ChColumn {
  name: string;
  type: string;
}

/** The ClickHouse columns of a spec (replicated columns, their NULL flags, then ours), in order. */
export function chColumns(spec: TableSpec, caps: Capabilities): ChColumn[] {
  const out: ChColumn[] = [];
  for (const c of spec.columns) {
    const m = mapColumn(c, caps);
    if (!m.ok) throw new Error(`bug: ${c.name} was not refused by buildSpec`);
    // Key columns are NOT NULL in PostgreSQL, so never Nullable: ClickHouse cannot sort by those.
    out.push({ name: c.name, type: m.mapping.clickhouse });
    if (m.mapping.nullFlagColumn) out.push({ name: m.mapping.nullFlagColumn, type: 'UInt8' });
  }
  out.push(
    { name: '_version', type: 'UInt64' },
    { name: '_deleted', type: 'UInt8' },
    { name: '_kafka_partition', type: 'UInt32' },
    { name: '_kafka_offset', type: 'UInt64' },
    { name: '_ingested_at', type: "DateTime('UTC')" },
  );
  return out;
}

export const viewName = (table: string) => `${table}_current`;

export function createTable(spec: TableSpec, caps: Capabilities, database: string, table = spec.clickhouseTable): string {
  const cols = chColumns(spec, caps).map((c) => `    ${chIdent(c.name)} ${c.type}`);
  const engine = caps.isDeleted ? 'ReplacingMergeTree(_version, _deleted)' : 'ReplacingMergeTree(_version)';
  // A retried insert with the same deduplication token is dropped by the server (see sink.ts).
  const settings = caps.dedupToken ? '\nSETTINGS non_replicated_deduplication_window = 1000' : '';
  return `CREATE TABLE IF NOT EXISTS ${chIdent(database)}.${chIdent(table)}\n(\n${cols.join(',\n')}\n)\nENGINE = ${engine}\nORDER BY (${spec.keyColumns.map(chIdent).join(', ')})${settings}`;
}

/** The deduplicated, delete-free view: what users should query (README "Reading the replica"). */
export function createView(spec: TableSpec, caps: Capabilities, database: string): string {
  const cols = chColumns(spec, caps)
    .filter((c) => !c.name.startsWith('_') || spec.columns.some((s) => s.name === c.name))
    .map((c) => chIdent(c.name));
  return `CREATE VIEW IF NOT EXISTS ${chIdent(database)}.${chIdent(viewName(spec.clickhouseTable))} AS\nSELECT ${cols.join(', ')}\n  FROM ${chIdent(database)}.${chIdent(spec.clickhouseTable)} FINAL\n WHERE _deleted = 0`;
}

/** What `migrate` must do to a table that exists (system.columns), compared with the spec. */
export type TablePlan =
  | { kind: 'create' }
  | { kind: 'up-to-date' }
  /** Columns added in PostgreSQL: ALTER TABLE … ADD COLUMN, then the rows are sent again (backfill). */
  | { kind: 'add-columns'; columns: ChColumn[] }
  /** A table made before versions (f141f4e's user_login): copied into the new shape, swapped in. */
  | { kind: 'legacy'; keep: string[] }
  /** Something only an operator can decide (a column dropped, renamed or of another type). */
  | { kind: 'conflict'; problems: string[] };

export function planTable(spec: TableSpec, caps: Capabilities, existing: ChColumn[] | null): TablePlan {
  if (existing === null) return { kind: 'create' };
  const have = new Map(existing.map((c) => [c.name, c.type]));
  const want = chColumns(spec, caps);
  if (!have.has('_version')) return { kind: 'legacy', keep: want.filter((c) => have.has(c.name)).map((c) => c.name) };
  const problems: string[] = [];
  const add: ChColumn[] = [];
  for (const c of want) {
    const t = have.get(c.name);
    if (t === undefined) add.push(c);
    else if (!sameType(t, c.type)) {
      problems.push(`column ${c.name} is ${t} in ClickHouse, but its PostgreSQL type now maps to ${c.type}`);
    }
  }
  const wanted = new Set(want.map((c) => c.name));
  for (const c of existing) {
    if (!wanted.has(c.name)) problems.push(`column ${c.name} is in ClickHouse but no longer replicated (dropped or renamed in PostgreSQL, or excluded)`);
  }
  if (problems.length > 0) return { kind: 'conflict', problems };
  return add.length > 0 ? { kind: 'add-columns', columns: add } : { kind: 'up-to-date' };
}

/**
 * Types as system.columns prints them vs as we write them, ignoring spacing and quoting, and
 * accepting what a server of another version would have made for the same PostgreSQL type (a
 * table made on 18.16 keeps working after an upgrade: the sink writes by the real type).
 */
export function sameType(actual: string, wanted: string): boolean {
  const norm = (t: string) => t.replace(/\s+/g, '').replace(/"/g, "'");
  if (norm(actual) === norm(wanted)) return true;
  const families: Array<[RegExp, RegExp]> = [
    [/^(Nullable\()?DateTime(64\(\d,'UTC'\)|\('UTC'\))\)?$/, /^(Nullable\()?DateTime(64\(\d,'UTC'\)|\('UTC'\))\)?$/],
    [/^(Nullable\()?Date(32)?\)?$/, /^(Nullable\()?Date(32)?\)?$/],
    [/^(Nullable\()?(Bool|UInt8)\)?$/, /^(Nullable\()?(Bool|UInt8)\)?$/],
    [/^(Nullable\(|LowCardinality\(Nullable\()?(LowCardinality\()?String\)*$/, /^(Nullable\(|LowCardinality\(Nullable\()?(LowCardinality\()?String\)*$/],
    [/^(Nullable\()?(Float(32|64)|String)\)?$/, /^(Nullable\()?(Float(32|64)|String)\)?$/],
  ];
  const isNullable = (t: string) => t.startsWith('Nullable(') || t.startsWith('LowCardinality(Nullable(');
  return families.some(([a, b]) => a.test(norm(actual)) && b.test(norm(wanted)) && isNullable(norm(actual)) === isNullable(norm(wanted)));
}

/**
 * The statements that move a table of f141f4e's shape (no _version: id UInt64 … kafka_partition,
 * kafka_offset, ingested_at) into the spec's shape, keeping every row once: a new table, the rows
 * copied with version 0 (any change from now on has a higher one), the two swapped in one RENAME.
 * The old table stays as `<table>__before_versions` until the operator drops it.
 */
export function legacyMigration(spec: TableSpec, caps: Capabilities, database: string, existing: ChColumn[]): string[] {
  const db = chIdent(database);
  const table = spec.clickhouseTable;
  const fresh = `${table}__streamer_new`;
  const old = `${table}__before_versions`;
  const have = new Set(existing.map((c) => c.name));
  const cols = chColumns(spec, caps);
  const from = (c: ChColumn): string => {
    if (c.name === '_version' || c.name === '_deleted') return '0';
    const legacy = { _kafka_partition: 'kafka_partition', _kafka_offset: 'kafka_offset', _ingested_at: 'ingested_at' }[c.name];
    if (legacy) return have.has(legacy) ? chIdent(legacy) : c.name === '_ingested_at' ? 'now()' : '0';
    if (c.name.endsWith('__is_null')) return '0';
    return have.has(c.name) ? `CAST(${chIdent(c.name)} AS ${c.type})` : `CAST(NULL AS ${c.type})`;
  };
  return [
    `DROP TABLE IF EXISTS ${db}.${chIdent(fresh)}`,
    createTable(spec, caps, database, fresh),
    // FINAL: the copies of a row the old table had not merged yet become one (the same version 0).
    `INSERT INTO ${db}.${chIdent(fresh)} (${cols.map((c) => chIdent(c.name)).join(', ')}) SELECT ${cols.map(from).join(', ')} FROM ${db}.${chIdent(table)} FINAL`,
    `RENAME TABLE ${db}.${chIdent(table)} TO ${db}.${chIdent(old)}, ${db}.${chIdent(fresh)} TO ${db}.${chIdent(table)}`,
  ];
}

export const legacyTableName = (table: string) => `${table}__before_versions`;

/** system.columns of one table, in order; null when the table does not exist. */
export const TABLE_COLUMNS = (database: string, table: string) =>
  `SELECT name, type, is_in_sorting_key AS sorting, default_kind AS kind FROM system.columns WHERE database = ${chLiteral(database)} AND table = ${chLiteral(table)}`;
// (No ORDER BY: 18.16 has no system.columns.position; its rows come in the table's column order.)
