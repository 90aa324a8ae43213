import pg from 'pg';
import type { Config } from './config.js';
import { pgAddress } from './config.js';
import { describeError, StreamerError, UnreachableError } from './errors.js';
import type { Logger } from './logger.js';

/** Connection settings shared by the pool and the LISTEN connection. */
export function pgConnectionConfig(config: Config, applicationName: string): pg.ClientConfig {
  return {
    connectionString: config.databaseUrl,
    ssl: config.databaseSsl ? { rejectUnauthorized: true } : undefined,
    application_name: applicationName,
    keepAlive: true,
    connectionTimeoutMillis: 5000,
  };
}

/** A pool for the producer's claim/mark transactions. Idle-client errors are logged, not fatal. */
export function createPool(config: Config, logger: Logger, applicationName = 'streamer'): pg.Pool {
  const pool = new pg.Pool({ ...pgConnectionConfig(config, applicationName), max: 4, idleTimeoutMillis: 30_000 });
  pool.on('error', (err) => logger.warn({ err }, 'idle PostgreSQL connection failed (a new one is made on next use)'));
  return pool;
}

export function pgUnreachableMessage(config: Config, err: unknown): string {
  return `PostgreSQL at ${pgAddress(config.databaseUrl)} is not reachable (${describeError(err)}) — start it with "npm run stack:up" or set DATABASE_URL`;
}

/** Connection-level failures (server down, restarting, connection killed) are worth retrying. */
export function isPgConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string') {
    // 08xxx connection exceptions, 57P0x admin shutdown / crash shutdown / cannot connect now
    if (code.startsWith('08') || code.startsWith('57P')) return true;
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH'].includes(code)) return true;
  }
  const msg = err instanceof Error ? err.message : '';
  return /Connection terminated|connection timeout|Client has encountered a connection error|not queryable/i.test(msg);
}

/** Checks that PostgreSQL answers; throws UnreachableError with the address and the fix. */
export async function assertPgReachable(pool: pg.Pool, config: Config): Promise<void> {
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    if (isPgConnectionError(err)) throw new UnreachableError(pgUnreachableMessage(config, err), err);
    throw new StreamerError(`PostgreSQL at ${pgAddress(config.databaseUrl)} refused us: ${describeError(err)} — check DATABASE_URL`, { cause: err });
  }
}
