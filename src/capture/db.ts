import pg from 'pg';
import type { Config } from '../config/config.js';
import { pgAddress } from '../config/config.js';
import { classified, describeError, StreamerError, UnreachableError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';

/**
 * How long a connection may wait, beyond the defaults every connection has. Without them a
 * half-open TCP connection (no reset, no answer: a cut network, a dead NAT entry) stalls a query
 * for the kernel's keep-alive time, 15 min to 2 h (issue 9).
 */
export interface PgLimits {
  /**
   * Client-side deadline of every query (node-postgres `query_timeout`), and the same
   * `statement_timeout` on the server. The only thing that notices a half-open connection soon: the
   * query fails with "Query read timeout" and the connection is thrown away.
   */
  queryTimeoutMs?: number;
  /**
   * `idle_in_transaction_session_timeout`: PostgreSQL ends a session that sits in an open
   * transaction this long — the producer's claim transaction, orphaned by a half-open connection
   * or a frozen process, whose row locks would otherwise be held until the server's own TCP
   * keep-alive gives up.
   */
  idleInTransactionMs?: number;
}

/** Connection settings of every connection we make; `limits` for the long-running roles. */
export function pgConnectionConfig(config: Config, applicationName: string, limits: PgLimits = {}): pg.ClientConfig {
  return {
    connectionString: config.databaseUrl,
    ssl: config.databaseSsl ? { rejectUnauthorized: true } : undefined,
    application_name: applicationName,
    keepAlive: true,
    // The first keep-alive probe after 10 s of silence instead of the kernel's 2 h.
    keepAliveInitialDelayMillis: 10_000,
    connectionTimeoutMillis: 5000,
    ...(limits.queryTimeoutMs ? { query_timeout: limits.queryTimeoutMs, statement_timeout: limits.queryTimeoutMs } : {}),
    ...(limits.idleInTransactionMs ? { idle_in_transaction_session_timeout: limits.idleInTransactionMs } : {}),
  };
}

/**
 * The producer's limits: every query within DATABASE_QUERY_TIMEOUT_MS, and a claim transaction
 * ended by the server once it has been idle longer than a publish may take plus a query
 * (PRODUCER_PUBLISH_TIMEOUT_MS + DATABASE_QUERY_TIMEOUT_MS): the producer itself rolls back at
 * its publish deadline, so only an orphaned session ever reaches it.
 */
export function producerLimits(config: Config): PgLimits {
  return { queryTimeoutMs: config.databaseQueryTimeoutMs, idleInTransactionMs: config.producerPublishTimeoutMs + config.databaseQueryTimeoutMs };
}

/** A pool for the producer's claim/mark transactions. Idle-client errors are logged, not fatal. */
export function createPool(config: Config, logger: Logger, applicationName = 'streamer', limits: PgLimits = producerLimits(config)): pg.Pool {
  // PRODUCER_CONCURRENCY batches in flight, plus the gauges and the shape checks.
  const pool = new pg.Pool({ ...pgConnectionConfig(config, applicationName, limits), max: Math.max(4, config.producerConcurrency + 2), idleTimeoutMillis: 30_000 });
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
  return /Connection terminated|connection timeout|Client has encountered a connection error|not queryable|Query read timeout/i.test(msg);
}

/**
 * Whether retrying can cure a PostgreSQL error: the connection (08, a timeout, a reset), the
 * server shutting down or starting (57P0x), a statement cancelled by statement_timeout (57014),
 * resources (53), a serialization failure or deadlock (40), a lock not available (55P03), an I/O
 * error (58). Not: a privilege (42501), a missing table or column (42P01, 42703), bad data.
 */
export function isPgRetriable(err: unknown): boolean {
  if (isPgConnectionError(err)) return true;
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return false;
  return ['08', '40', '53', '57', '58'].includes(code.slice(0, 2)) || code === '55P03';
}

/** A PostgreSQL error as a StreamerError: what happened, where, and what to do about it. */
export function pgFailure(config: Config, err: unknown): StreamerError {
  if (err instanceof StreamerError) return err;
  if (isPgConnectionError(err)) return new UnreachableError(pgUnreachableMessage(config, err), err);
  const code = (err as { code?: unknown })?.code;
  const fix =
    code === '42501'
      ? 'grant the role what "streamer grants --postgres" prints'
      : code === '42P01' || code === '42703'
        ? 'run "streamer migrate"'
        : 'check DATABASE_URL';
  return classified(`PostgreSQL at ${pgAddress(config.databaseUrl)} refused us: ${describeError(err)} — ${fix}`, isPgRetriable(err), err);
}

/** Checks that PostgreSQL answers; throws UnreachableError with the address and the fix. */
export async function assertPgReachable(pool: pg.Pool, config: Config): Promise<void> {
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    throw pgFailure(config, err);
  }
}
