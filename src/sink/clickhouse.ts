/**
 * The ClickHouse client, configured once, and what we need to know about the server: is it there,
 * which version, and which `event_time` type it can store. Only this module, the migrator and the
 * sink talk to ClickHouse.
 */
import { createClient, type ClickHouseClient, type Logger as ClickHouseLogger } from '@clickhouse/client';
import type { Config } from '../config/config.js';
import { chLiteral } from '../tables/identifiers.js';
import { parseServerVersion, type ServerVersion } from '../tables/server.js';

export { parseServerVersion, type ServerVersion };
import { describeError, StreamerError, UnreachableError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { maskUrl } from '../common/redact.js';

export type { ClickHouseClient };

export interface ClickHouseOptions {
  /**
   * The database requests run in. Default CLICKHOUSE_DATABASE; `null` for the user's default
   * database (the migrator, which may have to create CLICKHOUSE_DATABASE first).
   */
  database?: string | null;
  /** Per-request timeout. Default CLICKHOUSE_REQUEST_TIMEOUT_MS (30 s). */
  requestTimeoutMs?: number;
}

export function createClickHouse(config: Config, logger: Logger, options: ClickHouseOptions = {}): ClickHouseClient {
  const log = logger.child({ component: 'clickhouse-client' });
  const database = options.database === undefined ? config.clickhouseDatabase : options.database;
  return createClient({
    url: config.clickhouseUrl,
    username: config.clickhouseUser,
    password: config.clickhousePassword,
    ...(database === null ? {} : { database }),
    application: 'streamer',
    request_timeout: options.requestTimeoutMs ?? config.clickhouseRequestTimeoutMs,
    // Servers before 23.11 close idle keep-alive sockets after 3 s (keep_alive_timeout); a socket
    // we reuse just as the server closes it fails with ECONNRESET. 2 s leaves a 1 s margin.
    keep_alive: { enabled: true, idle_socket_ttl: 2000 },
    // The client logs every failed request itself at ERROR, to the console. Our retry loops log
    // each failure once with its next delay, so the client's own lines go to our logger at debug.
    log: { LoggerClass: forwardTo(log) },
  });
}

function forwardTo(log: Logger): new () => ClickHouseLogger {
  const write = (p: { module: string; message: string; args?: Record<string, unknown>; err?: Error }) =>
    log.debug({ module: p.module, ...(p.err ? { err: describeError(p.err) } : {}) }, p.message);
  return class implements ClickHouseLogger {
    trace = write;
    debug = write;
    info = write;
    warn = write;
    error = write;
  };
}

/** "ClickHouse at <url without password> is not reachable (…)" with the fix. */
export function clickhouseUnreachableMessage(config: Config, err: unknown): string {
  return `ClickHouse at ${maskUrl(config.clickhouseUrl)} is not reachable (${describeError(err)}) — start it with "npm run stack:up" or set CLICKHOUSE_URL`;
}

/**
 * The server's error code, or null when the request failed without a server answer (refused,
 * reset, timed out). @clickhouse/client parses `Code: N. DB::Exception: … (TYPE)` of new servers
 * into ClickHouseError.code; 18.16 answers `Code: N, e.displayText() = DB::Exception: …`, which the
 * client leaves as a plain Error — hence the second pattern.
 */
export function clickhouseErrorCode(err: unknown): number | null {
  if (!(err instanceof Error)) return null;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && /^\d+$/.test(code)) return Number(code);
  const m = /^Code: (\d+)[.,]/.exec(err.message);
  return m ? Number(m[1]) : null;
}

/**
 * Error codes with which ClickHouse refuses the data of an insert itself: retrying the same rows
 * cannot help, splitting the batch finds the culprit. Anything else (no answer, TOO_MANY_PARTS,
 * MEMORY_LIMIT_EXCEEDED, a dropped table …) is the server's state, and is retried.
 */
const DATA_ERROR_CODES = new Set([
  6, // CANNOT_PARSE_TEXT
  25, // CANNOT_PARSE_ESCAPE_SEQUENCE
  26, // CANNOT_PARSE_QUOTED_STRING
  27, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  32, // ATTEMPT_TO_READ_AFTER_EOF
  33, // CANNOT_READ_ALL_DATA
  38, // CANNOT_PARSE_DATE
  41, // CANNOT_PARSE_DATETIME
  53, // TYPE_MISMATCH
  69, // ARGUMENT_OUT_OF_BOUND
  70, // CANNOT_CONVERT_TYPE
  72, // CANNOT_PARSE_NUMBER
  117, // INCORRECT_DATA
  131, // TOO_LARGE_STRING_SIZE
  321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
  349, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
  407, // DECIMAL_OVERFLOW
]);

export function isClickHouseDataError(err: unknown): boolean {
  const code = clickhouseErrorCode(err);
  return code !== null && DATA_ERROR_CODES.has(code);
}

/**
 * Error codes with which ClickHouse says no for good, as far as retrying goes: the table or a
 * column is gone, the user may not. An operator must act (`streamer migrate`, a grant).
 * Everything else — no answer, a timeout, TOO_MANY_PARTS, MEMORY_LIMIT_EXCEEDED, a query id still
 * running (216) — passes, and is retried.
 */
const PERMANENT_CODES = new Set([
  16, // NO_SUCH_COLUMN_IN_TABLE
  47, // UNKNOWN_IDENTIFIER
  60, // UNKNOWN_TABLE
  81, // UNKNOWN_DATABASE
  164, // READONLY
  192, // UNKNOWN_USER
  193, // WRONG_PASSWORD
  194, // REQUIRED_PASSWORD
  195, // IP_ADDRESS_NOT_ALLOWED
  291, // DATABASE_ACCESS_DENIED
  497, // ACCESS_DENIED
  516, // AUTHENTICATION_FAILED
]);

export function isClickHouseRetriable(err: unknown): boolean {
  const code = clickhouseErrorCode(err);
  return code === null || !PERMANENT_CODES.has(code);
}

/**
 * A ClickHouse error as a StreamerError: no answer (retried, with the address and the fix), an
 * answer that retrying can outlast (retried), or one it cannot (the message says what to do).
 */
export function clickhouseFailure(config: Config, err: unknown, table: string): StreamerError {
  if (err instanceof StreamerError) return err;
  const code = clickhouseErrorCode(err);
  if (code === null) return new UnreachableError(clickhouseUnreachableMessage(config, err), err);
  if (code === 60) return new StreamerError(`ClickHouse table ${table} does not exist — run "streamer migrate"`, { cause: err });
  if (code === 81) return new StreamerError(`ClickHouse database of ${table} does not exist — run "streamer migrate" (or check CLICKHOUSE_DATABASE)`, { cause: err });
  const retriable = isClickHouseRetriable(err);
  const fix = retriable ? '' : ' — check CLICKHOUSE_USER and its grants ("streamer grants --clickhouse" prints what it needs)';
  return new StreamerError(`ClickHouse refused ${table}: ${clickhouseErrorText(err)}${fix}`, { retriable, cause: err });
}

/** How long after its start a server may still be attaching its tables (18.16 answers HTTP meanwhile). */
export const CLICKHOUSE_LOADING_GRACE_S = 120;

/**
 * A table or database "missing" (60, 81) on a server that restarted since `seenAt` (when this
 * process last saw the table, by storing into it or opening it), moments ago: ClickHouse 18.16
 * answers HTTP while it still attaches its tables — the fault suite met it after a restart, and a
 * consumer that took it for a dropped table stopped for good. It also answers so while it SHUTS
 * DOWN (it detaches the tables before it stops serving HTTP: the full fault profile met it on
 * 2026-11-26, an insert 33 ms after a successful one). Such an error becomes retriable; a table
 * is taken as dropped (what clickhouseFailure says: an operator must act) only when the server
 * did not restart since `seenAt` and keeps answering, up and not restarting, for
 * `probes` × `probeEveryMs` more.
 */
export async function missingWhileLoading(
  client: ClickHouseClient,
  err: unknown,
  failure: StreamerError,
  seenAt: number,
  { probes = 3, probeEveryMs = 500, sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms)) } = {},
): Promise<StreamerError> {
  const code = clickhouseErrorCode(err);
  if ((code !== 60 && code !== 81) || failure.retriable) return failure;
  const uptime = async (): Promise<number | null> => {
    try {
      const rows = await (await client.query({ query: SERVER_UPTIME, format: 'JSONEachRow' })).json<{ s: string }>();
      return Number(rows[0]?.s);
    } catch {
      return null;
    }
  };
  let up = await uptime();
  if (up === null) return new StreamerError(`${failure.message} (ClickHouse did not answer how long it has been up: retrying)`, { retriable: true, cause: err });
  const restartedSince = up * 1000 < Date.now() - seenAt;
  if (restartedSince && up < CLICKHOUSE_LOADING_GRACE_S) {
    return new StreamerError(`${failure.message} — or ClickHouse, restarted ${up} s ago, is still attaching its tables: retrying`, { retriable: true, cause: err });
  }
  if (restartedSince) return failure;
  // Not restarted: dropped — or shutting down. A server shutting down stops answering, or comes
  // back with a smaller uptime, within moments.
  for (let i = 0; i < probes; i++) {
    await sleep(probeEveryMs);
    const now = await uptime();
    if (now === null || now < up) {
      return new StreamerError(`${failure.message} — or ClickHouse was shutting down (it ${now === null ? 'stopped answering' : 'restarted'} moments later): retrying`, { retriable: true, cause: err });
    }
    up = now;
  }
  return failure;
}

const SERVER_UPTIME = 'SELECT toString(uptime()) AS s';

/** The useful part of a ClickHouse error message, on one line (for logs and dead-letter headers). */
export function clickhouseErrorText(err: unknown): string {
  const text = describeError(err)
    .replace(/^Code: (\d+), e\.displayText\(\) = DB::Exception: /, 'Code $1: ')
    .replace(/, e\.what\(\) = DB::Exception\s*$/, '')
    .replace(/\s+/g, ' ')
    .trim();
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}

/** One request that proves the server answers; an UnreachableError with the fix when not. */
export async function checkClickHouse(client: ClickHouseClient, config: Config): Promise<ServerVersion> {
  try {
    return await serverVersion(client);
  } catch (err) {
    // A server answer (wrong password, unknown database) is not "unreachable": let it through.
    if (clickhouseErrorCode(err) !== null) throw err;
    throw new UnreachableError(clickhouseUnreachableMessage(config, err), err);
  }
}

export async function serverVersion(client: ClickHouseClient): Promise<ServerVersion> {
  const rs = await client.query({ query: 'SELECT version() AS version', format: 'JSONEachRow' });
  const rows = await rs.json<{ version: string }>();
  return parseServerVersion(rows[0]?.version ?? '');
}

/** Now as a DateTime('UTC') literal, 'YYYY-MM-DD HH:MM:SS'. */
export function clickhouseNow(now: Date = new Date()): string {
  return now.toISOString().slice(0, 19).replace('T', ' ');
}

/** Whether a table exists (a query on a missing table says only "Code: 60"). */
export async function clickhouseTableExists(ch: ClickHouseClient, database: string, table: string): Promise<boolean> {
  const rows = await (
    await ch.query({ query: `SELECT toString(count()) AS n FROM system.tables WHERE database = ${chLiteral(database)} AND name = ${chLiteral(table)}`, format: 'JSONEachRow' })
  ).json<{ n: string }>();
  return rows[0]?.n !== '0';
}
