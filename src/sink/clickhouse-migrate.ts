/**
 * `streamer migrate`, ClickHouse side:
 *  1. the numbered migrations of sql/clickhouse/ (what every table shares: the dead-letter
 *     record), recorded in CLICKHOUSE_DATABASE.streamer_migrations, the database created first;
 *  2. per table spec: its table and deduplicated view (src/sink/ddl.ts) — created, brought up to
 *     date (columns added in PostgreSQL are added here), or moved from f141f4e's shape keeping
 *     every row. What only an operator can decide (a column dropped, renamed or retyped in
 *     PostgreSQL) fails the migrate with each problem named; nothing is dropped.
 *
 * ClickHouse has neither transactions nor advisory locks, so safety under a second migrator
 * running at the same time comes from the SQL itself: every statement is `IF NOT EXISTS`, and the
 * record table is a ReplacingMergeTree read with DISTINCT. (The move from f141f4e's shape is the
 * exception: run it once, with the consumer stopped.)
 */
import type { Config } from '../config/config.js';
import { StreamerError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { readMigrations, SQL_DIR } from '../common/migrations.js';
import { chIdent } from '../tables/identifiers.js';
import { capabilities, type ServerVersion } from '../tables/server.js';
import type { TableSpec } from '../tables/spec.js';
import { tableKey } from '../config/tables.js';
import { checkClickHouse, clickhouseNow, createClickHouse, type ClickHouseClient } from './clickhouse.js';
import { createTable, createView, legacyMigration, legacyTableName, planTable, TABLE_COLUMNS, viewName, type ChColumn } from './ddl.js';

export interface ClickHouseTableMigration {
  table: string;
  /** What was done: created, moved from the shape before versions, columns added, nothing. */
  action: 'created' | 'moved' | 'columns added' | 'up to date';
  detail: string | null;
}

export interface ClickHouseMigration {
  applied: string[];
  tables: ClickHouseTableMigration[];
  version: ServerVersion;
}

export async function migrateClickHouse(config: Config, logger: Logger, specs: readonly TableSpec[], opts: { client?: ClickHouseClient } = {}): Promise<ClickHouseMigration> {
  const log = logger.child({ component: 'migrate', target: 'clickhouse' });
  // The user's default database: CLICKHOUSE_DATABASE may not exist yet. (`opts.client`: another
  // engine behind the same calls — the conformance suite's embedded current ClickHouse.)
  const client = opts.client ?? createClickHouse(config, logger, { database: null, requestTimeoutMs: Math.max(config.clickhouseRequestTimeoutMs, 600_000) });
  const db = config.clickhouseDatabase;
  const applied: string[] = [];
  const tables: ClickHouseTableMigration[] = [];
  try {
    const version = await checkClickHouse(client, config);
    const caps = capabilities(version);
    await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${chIdent(db)}` });
    await client.command({
      query: `CREATE TABLE IF NOT EXISTS ${chIdent(db)}.streamer_migrations
              (id UInt32, name String, applied_at DateTime('UTC'))
              ENGINE = ReplacingMergeTree ORDER BY id`,
    });
    const rows = await (await client.query({ query: `SELECT DISTINCT id FROM ${chIdent(db)}.streamer_migrations`, format: 'JSONEachRow' })).json<{ id: number }>();
    const done = new Set(rows.map((r) => Number(r.id)));
    for (const m of readMigrations(`${SQL_DIR}clickhouse`)) {
      if (done.has(m.id)) continue;
      for (const statement of splitStatements(substitute(m.sql, { database: chIdent(db) }))) {
        try {
          await client.command({ query: statement });
        } catch (err) {
          throw new Error(`ClickHouse migration ${m.id} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
        }
      }
      await client.insert({ table: `${db}.streamer_migrations`, values: [{ id: m.id, name: m.name, applied_at: clickhouseNow() }], format: 'JSONEachRow' });
      log.info({ migration: m.id, name: m.name, database: db }, 'applied');
      applied.push(m.name);
    }
    const conflicts: string[] = [];
    for (const spec of specs) {
      const existing = await columnsOf(client, db, spec.clickhouseTable);
      const plan = planTable(spec, caps, existing);
      const name = `${db}.${spec.clickhouseTable}`;
      const run = async (sql: string) => client.command({ query: sql });
      if (plan.kind === 'conflict') {
        conflicts.push(`${name} (from ${tableKey(spec)}): ${plan.problems.join('; ')}`);
        continue;
      }
      if (plan.kind !== 'up-to-date' && !caps.dateTime64) {
        const seconds = spec.columns.filter((c) => ['timestamp', 'timestamptz'].includes(c.element?.typname ?? c.typname)).map((c) => `${tableKey(spec)}.${c.name}`);
        if (seconds.length > 0) {
          log.warn(
            { table: name, columns: seconds, serverVersion: version.text },
            `ClickHouse ${version.text} has no DateTime64 (it needs 20.1 or later): ${seconds.join(', ')} ${seconds.length === 1 ? 'is' : 'are'} stored as DateTime('UTC'), whole seconds — sub-second digits are dropped`,
          );
        }
      }
      if (plan.kind === 'create') {
        await run(createTable(spec, caps, db));
        await run(createView(spec, caps, db));
        tables.push({ table: name, action: 'created', detail: null });
      } else if (plan.kind === 'legacy') {
        for (const sql of legacyMigration(spec, caps, db, existing as ChColumn[])) await run(sql);
        await run(`DROP TABLE IF EXISTS ${chIdent(db)}.${chIdent(viewName(spec.clickhouseTable))}`);
        await run(createView(spec, caps, db));
        const kept = `${db}.${legacyTableName(spec.clickhouseTable)}`;
        log.warn({ table: name, kept }, `moved ${name} to the shape with versions, keeping every row (version 0); the table as it was is kept as ${kept}: drop it once you no longer need it`);
        tables.push({ table: name, action: 'moved', detail: `the old table is kept as ${kept}` });
      } else if (plan.kind === 'add-columns') {
        for (const c of plan.columns) {
          // Without IF NOT EXISTS (18.16 has none for columns): a migrate running beside this one
          // may have added it a moment ago, which is fine.
          await run(`ALTER TABLE ${chIdent(db)}.${chIdent(spec.clickhouseTable)} ADD COLUMN ${chIdent(c.name)} ${c.type}`).catch((err: unknown) => {
            if (!/already exists/i.test(String((err as Error).message))) throw err;
          });
        }
        await run(`DROP TABLE IF EXISTS ${chIdent(db)}.${chIdent(viewName(spec.clickhouseTable))}`);
        await run(createView(spec, caps, db));
        tables.push({ table: name, action: 'columns added', detail: plan.columns.map((c) => c.name).join(', ') });
      } else {
        await run(createView(spec, caps, db)); // IF NOT EXISTS: a view dropped by hand comes back
        tables.push({ table: name, action: 'up to date', detail: null });
      }
    }
    if (conflicts.length > 0) {
      throw new StreamerError(
        `ClickHouse tables differ from their PostgreSQL tables in ways only you can decide — ${conflicts.join(' | ')}. Nothing was dropped: move or drop the ClickHouse table (or column) yourself, then run "streamer migrate" again`,
      );
    }
    return { applied, tables, version };
  } finally {
    await client.close();
  }
}

/** A table's columns (system.columns, in order), or null when it does not exist. */
export async function columnsOf(client: ClickHouseClient, database: string, table: string): Promise<ChColumn[] | null> {
  const rows = await (await client.query({ query: TABLE_COLUMNS(database, table), format: 'JSONEachRow' })).json<{ name: string; type: string }>();
  return rows.length === 0 ? null : rows.map((r) => ({ name: r.name, type: r.type }));
}

/** Replaces every `{{name}}`; an unknown name is a bug in a migration file, not a value to guess. */
export function substitute(sql: string, values: Record<string, string>): string {
  return sql.replace(/\{\{(\w+)\}\}/g, (_m, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`unknown placeholder {{${name}}} in a ClickHouse migration`);
    return v;
  });
}

/** ClickHouse's HTTP interface runs one statement per request: split on `;` at the end of a line. */
export function splitStatements(sql: string): string[] {
  const withoutComments = sql
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('--'))
    .join('\n');
  return withoutComments
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
