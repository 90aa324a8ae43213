import type { Config } from './config.js';
import { checkClickHouse, clickhouseNow, createClickHouse, eventTimeTypeFor, supportsDateTime64, type ServerVersion } from './clickhouse.js';
import type { Logger } from './logger.js';
import { readMigrations, SQL_DIR } from './migrations.js';

/**
 * Applies sql/clickhouse/NNNN_*.sql that are not yet recorded in
 * CLICKHOUSE_DATABASE.streamer_migrations, creating the database first if it is missing. Returns
 * the names applied (empty when already up to date).
 *
 * ClickHouse has neither transactions nor advisory locks, so safety under a second migrator
 * running at the same time comes from the SQL itself: every statement is `IF NOT EXISTS`, and the
 * record table is a ReplacingMergeTree read with DISTINCT, so two processes applying the same
 * migration end with the same schema and one record.
 */
export async function migrateClickHouse(config: Config, logger: Logger): Promise<string[]> {
  const log = logger.child({ component: 'migrate', target: 'clickhouse' });
  // The user's default database: CLICKHOUSE_DATABASE may not exist yet.
  const client = createClickHouse(config, logger, { database: null });
  // Interpolated into DDL: config.ts allows only [A-Za-z_][A-Za-z0-9_]* here. ClickHouse 18.16
  // has no query parameters, and identifiers cannot be parameters anyway.
  const db = config.clickhouseDatabase;
  const applied: string[] = [];
  try {
    const version = await checkClickHouse(client, config);
    await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` });
    await client.command({
      query: `CREATE TABLE IF NOT EXISTS ${db}.streamer_migrations
              (id UInt32, name String, applied_at DateTime('UTC'))
              ENGINE = ReplacingMergeTree ORDER BY id`,
    });
    const rows = await (await client.query({ query: `SELECT DISTINCT id FROM ${db}.streamer_migrations`, format: 'JSONEachRow' })).json<{ id: number }>();
    const done = new Set(rows.map((r) => Number(r.id)));
    const values = placeholderValues(db, version);
    for (const m of readMigrations(`${SQL_DIR}clickhouse`)) {
      if (done.has(m.id)) continue;
      for (const statement of splitStatements(substitute(m.sql, values))) {
        try {
          await client.command({ query: statement });
        } catch (err) {
          throw new Error(`ClickHouse migration ${m.id} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
        }
      }
      await client.insert({
        table: `${db}.streamer_migrations`,
        values: [{ id: m.id, name: m.name, applied_at: clickhouseNow() }],
        format: 'JSONEachRow',
      });
      log.info({ migration: m.id, name: m.name, database: db }, 'applied');
      if (m.sql.includes('{{event_time_type}}') && !supportsDateTime64(version)) {
        log.warn(
          { serverVersion: version.text, eventTimeType: values.event_time_type },
          `ClickHouse ${version.text} has no DateTime64 (it needs 20.1 or later): event_time is stored as DateTime('UTC'), and sub-second digits are dropped`,
        );
      }
      applied.push(m.name);
    }
  } finally {
    await client.close();
  }
  if (applied.length === 0) log.info({ database: db }, 'ClickHouse schema is up to date');
  return applied;
}

export function placeholderValues(database: string, version: Pick<ServerVersion, 'major' | 'minor'>): Record<string, string> {
  return { database, event_time_type: eventTimeTypeFor(version) };
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
