/**
 * A current ClickHouse engine in-process: npm `chdb` (ClickHouse 26.7 inside), a devDependency.
 * It cannot listen on HTTP, so it cannot stand behind @clickhouse/client; this adapter gives the
 * sink the three calls it makes (query → JSON rows, exec of an INSERT with its TabSeparated body
 * and settings, command), so that the sink's own code — its SQL and its exact bytes — runs on it.
 */
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';

interface ChdbSession {
  query(sql: string, format?: string): string;
  cleanup?(): void;
}

export interface Engine {
  version: string;
  /** Rows of a query, JSONEachRow. */
  rows<T = Record<string, unknown>>(sql: string): T[];
  run(sql: string): void;
  /** What TableSink and the migrations need of @clickhouse/client. */
  client: ClickHouseClient;
  close(): void;
}

/** Loads chdb (throws, never skips, when it cannot: the suite must fail then). */
export function openEngine(): Engine {
  const require = createRequire(import.meta.url);
  const { Session } = require('chdb') as { Session: new (path?: string) => ChdbSession };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'streamer-chdb-'));
  const session = new Session(dir);
  const rows = <T>(sql: string): T[] =>
    session
      .query(sql, 'JSONEachRow')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as T);
  const run = (sql: string) => void session.query(sql);
  const withSettings = (sql: string, settings: Record<string, unknown> | undefined) => {
    const entries = Object.entries(settings ?? {});
    if (entries.length === 0) return sql;
    const clause = `SETTINGS ${entries.map(([k, v]) => `${k} = '${String(v).replace(/'/g, "\\'")}'`).join(', ')}`;
    return sql.replace(/ FORMAT (JSONEachRow|TabSeparated)\n/, (_, format: string) => ` ${clause} FORMAT ${format}\n`);
  };
  const client = {
    query: async ({ query }: { query: string }) => ({ json: async <T>() => rows<T>(query) }),
    exec: async ({ query, values, clickhouse_settings }: { query: string; values?: Readable; clickhouse_settings?: Record<string, unknown> }) => {
      // An insert's rows come as a stream (its body), after the statement.
      const body = values ? `\n${Buffer.concat(await values.toArray()).toString('utf8')}` : '';
      run(withSettings(`${query}${body}`, clickhouse_settings));
      return { stream: { resume() {} } };
    },
    insert: async ({ table, values }: { table: string; values: unknown[] }) => {
      run(`INSERT INTO ${table} FORMAT JSONEachRow\n${values.map((v) => JSON.stringify(v)).join('\n')}`);
      return {};
    },
    command: async ({ query }: { query: string }) => {
      run(query);
      return {};
    },
    close: async () => {},
  } as unknown as ClickHouseClient;
  const version = rows<{ v: string }>('SELECT version() AS v')[0]?.v ?? '';
  return {
    version,
    rows,
    run,
    client,
    close: () => {
      session.cleanup?.();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
