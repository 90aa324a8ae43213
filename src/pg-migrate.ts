import pg from 'pg';
import type { Config } from './config.js';
import { pgConnectionConfig, pgUnreachableMessage, isPgConnectionError } from './db.js';
import { UnreachableError } from './errors.js';
import type { Logger } from './logger.js';
import { readMigrations, SQL_DIR } from './migrations.js';

// One advisory lock key for every streamer migrator of a database: a second `migrate` started at
// the same time waits for the first, then finds everything applied.
const MIGRATE_LOCK_KEY = 728_339_101;

/**
 * Applies sql/postgres/NNNN_*.sql that are not yet recorded in streamer_migrations, each in its
 * own transaction. Returns the names applied (empty when already up to date).
 */
export async function migratePostgres(config: Config, logger: Logger): Promise<string[]> {
  const log = logger.child({ component: 'migrate', target: 'postgres' });
  const migrations = readMigrations(`${SQL_DIR}postgres`);
  const client = new pg.Client(pgConnectionConfig(config, 'streamer-migrate'));
  try {
    await client.connect();
  } catch (err) {
    if (isPgConnectionError(err)) throw new UnreachableError(pgUnreachableMessage(config, err), err);
    throw err;
  }
  const applied: string[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATE_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS streamer_migrations (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ id: number }>('SELECT id FROM streamer_migrations');
    const done = new Set(rows.map((r) => r.id));
    for (const m of migrations) {
      if (done.has(m.id)) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO streamer_migrations (id, name) VALUES ($1, $2)', [m.id, m.name]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw new Error(`PostgreSQL migration ${m.id} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
      }
      log.info({ migration: m.id, name: m.name }, 'applied');
      applied.push(m.name);
    }
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATE_LOCK_KEY]);
  } finally {
    await client.end().catch(() => {});
  }
  if (applied.length === 0) log.info('PostgreSQL schema is up to date');
  return applied;
}
