import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import type { Config } from '../../src/config/config.js';
import { ROOT } from './cli.js';

/** Runs `fn` with a fresh connection to the test database, closed after. */
export async function withPg<T>(config: Config, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: config.databaseUrl });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function pgCount(config: Config, where = 'TRUE'): Promise<number> {
  return withPg(config, async (c) => Number((await c.query(`SELECT count(*)::int AS n FROM user_login WHERE ${where}`)).rows[0].n));
}

/** The seed's table and ten rows (sql/seed/user_login.sql), as the seed README gives them. */
export const SEED_SQL = readFileSync(path.join(ROOT, 'sql/seed/user_login.sql'), 'utf8');

/** The seed's DDL alone (users adopt streamer on such a table). */
export const SEED_DDL = SEED_SQL.slice(0, SEED_SQL.indexOf(';') + 1);

/** The seed's rows in id order: [username, event_type, event_time]. */
export const SEED_ROWS: Array<[string, string, string]> = [...SEED_SQL.matchAll(/\('([^']*)', '([^']*)', '([^']*)'\)/g)].map(
  (m) => [m[1]!, m[2]!, m[3]!],
);

/** Creates the seed's table if missing and inserts its ten rows. */
export async function insertSeedRows(config: Config): Promise<void> {
  await withPg(config, (c) => c.query(SEED_SQL));
}
