/**
 * `streamer migrate`, PostgreSQL side:
 *  1. the numbered migrations of sql/postgres/ (what every table shares), each in its own
 *     transaction, recorded in streamer_migrations, under an advisory lock (two migrators at once
 *     are serialised);
 *  2. per configured table: its capture (src/capture/plans.ts), installed or brought up to date in
 *     one short transaction, and recorded in streamer_tables with the shape it was made for;
 *  3. per table that needs it, a backfill: the key of every existing row queued in its change log,
 *     in chunks, so that the producer sends them all — when a table is adopted in the log mode,
 *     and when columns were added since the last migrate. (A flag-mode table needs none when it is
 *     adopted: its rows' flags already say what was sent.)
 *
 * Installing triggers takes a SHARE ROW EXCLUSIVE lock on the table for the duration of that
 * transaction (writes wait, reads go on); the backfill then runs beside the application, one
 * chunk per transaction, holding no lock beyond ordinary reads.
 */
import pg from 'pg';
import type { Config } from '../config/config.js';
import { UnreachableError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { readMigrations, SQL_DIR } from '../common/migrations.js';
import { pgIdent, pgLiteral } from '../tables/identifiers.js';
import { buildSpec, readCatalog } from '../tables/introspect.js';
import { captureObjects, type TableConfig, type TableSpec } from '../tables/spec.js';
import { tableKey } from '../config/tables.js';
import { isPgConnectionError, pgConnectionConfig, pgUnreachableMessage } from './db.js';
import { installCapture, LEGACY_OBJECTS, NOTIFY_CHANNEL } from './plans.js';

// One advisory lock key for every streamer migrator of a database: a second `migrate` started at
// the same time waits for the first, then finds everything applied.
const MIGRATE_LOCK_KEY = 728_339_101;

/** The seed's table, created when public.user_login is configured and missing (the zero-config default). */
export const USER_LOGIN_DDL = `CREATE TABLE IF NOT EXISTS public.user_login (
    id SERIAL PRIMARY KEY,
    username TEXT,
    event_type TEXT,
    event_time TIMESTAMP,
    sent_to_kafka BOOLEAN DEFAULT FALSE
)`;

const TABLES_RECORD = `CREATE TABLE IF NOT EXISTS streamer_tables (
    table_name TEXT PRIMARY KEY,
    capture TEXT NOT NULL,
    columns TEXT NOT NULL,
    installed_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`;

/** The shape a capture was made for: its mode and its replicated columns with their types. */
export function shapeOf(spec: TableSpec): { capture: string; columns: string } {
  return {
    capture: spec.capture.kind === 'flag' ? `flag:${spec.capture.column}` : 'log',
    columns: JSON.stringify(spec.columns.map((c) => [c.name, c.type])),
  };
}

export interface TableMigration {
  table: string;
  /** 'installed' (new), 'updated' (the shape changed), 'up to date'. */
  capture: 'installed' | 'updated' | 'up to date';
  /** Rows queued for a backfill (0 when none was needed). */
  backfilled: number;
  /** Columns added since the last migrate. */
  addedColumns: string[];
}

export interface PostgresMigration {
  applied: string[];
  tables: TableMigration[];
  specs: TableSpec[];
}

export async function connectForMigrate(config: Config): Promise<pg.Client> {
  const client = new pg.Client(pgConnectionConfig(config, 'streamer-migrate'));
  try {
    await client.connect();
  } catch (err) {
    if (isPgConnectionError(err)) throw new UnreachableError(pgUnreachableMessage(config, err), err);
    throw err;
  }
  return client;
}

export interface PostgresMigrateOptions {
  backfillChunk?: number;
  onProgress?: (table: string, queued: number) => void;
  /**
   * Runs once the specs are read, before any capture is installed or changed (under the migrate
   * lock): the ClickHouse side, so that a column exists in ClickHouse before the producer is told
   * to send it.
   */
  beforeInstall?: (specs: TableSpec[]) => Promise<void>;
}

export async function migratePostgres(config: Config, logger: Logger, opts: PostgresMigrateOptions = {}): Promise<PostgresMigration> {
  const log = logger.child({ component: 'migrate', target: 'postgres' });
  const migrations = readMigrations(`${SQL_DIR}postgres`);
  const client = await connectForMigrate(config);
  const applied: string[] = [];
  const tables: TableMigration[] = [];
  const specs: TableSpec[] = [];
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
      await inTransaction(client, `PostgreSQL migration ${m.id} (${m.name})`, async () => {
        await client.query(m.sql);
        await client.query('INSERT INTO streamer_migrations (id, name) VALUES ($1, $2)', [m.id, m.name]);
      });
      log.info({ migration: m.id, name: m.name }, 'applied');
      applied.push(m.name);
    }
    await client.query(TABLES_RECORD);
    const schema = (await client.query<{ s: string }>('SELECT current_schema() AS s')).rows[0]?.s ?? 'public';
    for (const t of config.tables) specs.push(await specOf(client, t));
    await opts.beforeInstall?.(specs);
    for (const spec of specs) tables.push(await installTable(client, spec, schema, log));
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATE_LOCK_KEY]);
    // Backfills after the lock: they may take long, and run beside the application.
    for (const [i, spec] of specs.entries()) {
      const t = tables[i] as TableMigration;
      if (t.capture === 'up to date') continue;
      const needed = (t.capture === 'installed' && spec.capture.kind === 'log') || t.addedColumns.length > 0;
      if (needed) t.backfilled = await backfill(client, spec, log, opts.backfillChunk ?? 50_000, opts.onProgress);
      // A running producer: follow the new shape now, and send what was queued.
      await client.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, spec.id]);
    }
  } finally {
    await client.end().catch(() => {});
  }
  if (applied.length === 0 && tables.every((t) => t.capture === 'up to date')) log.info('PostgreSQL schema is up to date');
  return { applied, tables, specs };
}

/** The table's spec from the catalog; public.user_login is created first if it is configured and missing. */
async function specOf(client: pg.Client, t: TableConfig): Promise<TableSpec> {
  let catalog = await readCatalog(client, t.schema, t.table);
  if (!catalog && t.schema === 'public' && t.table === 'user_login') {
    await client.query(USER_LOGIN_DDL);
    catalog = await readCatalog(client, t.schema, t.table);
  }
  return buildSpec(t, catalog);
}

async function inTransaction(client: pg.Client, what: string, fn: () => Promise<void>): Promise<void> {
  await client.query('BEGIN');
  try {
    await fn();
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw new Error(`${what} failed: ${(err as Error).message}`, { cause: err });
  }
}

async function installTable(client: pg.Client, spec: TableSpec, schema: string, log: Logger): Promise<TableMigration> {
  const name = tableKey(spec);
  const shape = shapeOf(spec);
  const prior = (await client.query<{ capture: string; columns: string }>('SELECT capture, columns FROM streamer_tables WHERE table_name = $1', [name])).rows[0];
  if (prior && prior.capture === shape.capture && prior.columns === shape.columns) return { table: name, capture: 'up to date', backfilled: 0, addedColumns: [] };
  const before = prior ? (JSON.parse(prior.columns) as Array<[string, string]>).map(([n]) => n) : [];
  const addedColumns = prior ? spec.columns.map((c) => c.name).filter((n) => !before.includes(n)) : [];
  const started = Date.now();
  await inTransaction(client, `installing the capture of ${name}`, async () => {
    // Bounded wait for the table's lock: a long transaction of the application must not make
    // migrate queue every write of the table behind it.
    await client.query(`SET LOCAL lock_timeout = '10s'`);
    for (const sql of installCapture(spec, schema)) await client.query(sql);
    if (name === 'public.user_login') for (const sql of LEGACY_OBJECTS) await client.query(sql);
    await client.query(
      `INSERT INTO streamer_tables (table_name, capture, columns) VALUES ($1, $2, $3)
       ON CONFLICT (table_name) DO UPDATE SET capture = EXCLUDED.capture, columns = EXCLUDED.columns, installed_at = now()`,
      [name, shape.capture, shape.columns],
    );
  });
  const ms = Date.now() - started;
  log.info({ table: name, capture: spec.capture.kind, ms, addedColumns }, prior ? 'capture updated' : 'capture installed');
  return { table: name, capture: prior ? 'updated' : 'installed', backfilled: 0, addedColumns };
}

/**
 * Queues the key of every row in the change log ('U', a version each), in chunks in key order,
 * one transaction each. Returns how many.
 */
export async function backfill(
  client: pg.Client,
  spec: TableSpec,
  log: Logger,
  chunk: number,
  onProgress?: (table: string, queued: number) => void,
  opts: { onlySent?: boolean } = {},
): Promise<number> {
  const o = captureObjects(spec);
  // Flag mode, rows already sent only: the others go out by their flag anyway.
  const sentOnly = opts.onlySent && spec.capture.kind === 'flag' ? `${pgIdent(spec.capture.column)} IS TRUE` : null;
  const keys = spec.keyColumns.map(pgIdent).join(', ');
  const name = tableKey(spec);
  let queued = 0;
  let last: string[] | null = null;
  const total = Number((await client.query<{ n: string }>(`SELECT reltuples::bigint AS n FROM pg_class WHERE oid = ${pgLiteral(spec.qualified)}::regclass`)).rows[0]?.n ?? 0);
  for (;;) {
    const conditions = [...(last === null ? [] : [`(${keys}) > (${last.map((_, i) => `$${i + 1}`).join(', ')})`]), ...(sentOnly ? [sentOnly] : [])];
    const after = conditions.length ? `WHERE ${conditions.join(' AND ')}` : '';
    const casts = spec.keyColumns.map((k, i) => `${pgIdent(k)}::text AS k${i}`).join(', ');
    const res = await client.query<Record<string, string>>(
      `WITH picked AS (SELECT ${keys} FROM ${spec.qualified} ${after} ORDER BY ${keys} LIMIT ${chunk}),
            queued AS (INSERT INTO ${o.changes} (_version, _op, ${keys}) SELECT nextval('streamer_version_seq'), 'U', ${spec.keyColumns.map((k) => `${pgIdent(k)}::text`).join(', ')} FROM picked RETURNING _version)
       SELECT count(*)::int AS n, (SELECT row_to_json(x) FROM (SELECT ${casts} FROM picked ORDER BY ${keys} DESC LIMIT 1) x)::text AS last FROM queued`,
      last ?? [],
    );
    const n = Number(res.rows[0]?.n ?? 0);
    if (n === 0) break;
    queued += n;
    const lastRow = JSON.parse(res.rows[0]?.last as string) as Record<string, string>;
    last = spec.keyColumns.map((_, i) => lastRow[`k${i}`] as string);
    onProgress?.(name, queued);
    log.info({ table: name, queued, estimatedRows: total }, `backfill of ${name}: ${queued} rows queued`);
    if (n < chunk) break;
  }
  return queued;
}

/**
 * Queues every row of `specs` again (rows already sent only, in flag mode): for a ClickHouse
 * table created anew while PostgreSQL's rows count as sent — dropped by an operator to be
 * re-created, or a new CLICKHOUSE_DATABASE — which would otherwise never receive them.
 */
export async function resendTables(config: Config, logger: Logger, specs: readonly TableSpec[], opts: { backfillChunk?: number; onProgress?: (table: string, queued: number) => void } = {}): Promise<number[]> {
  const log = logger.child({ component: 'migrate', target: 'postgres' });
  const client = await connectForMigrate(config);
  try {
    const out: number[] = [];
    for (const spec of specs) {
      out.push(await backfill(client, spec, log, opts.backfillChunk ?? 50_000, opts.onProgress, { onlySent: true }));
      await client.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, spec.id]);
    }
    return out;
  } finally {
    await client.end().catch(() => {});
  }
}
