/**
 * `verify`: does ClickHouse hold exactly the rows of PostgreSQL's user_login, each once?
 *
 * Meant to run once the streams have drained (cron, CI, after an incident). It never loads either
 * table into memory: the id space is cut into fixed ranges of `rangeSize` ids (range r is
 * [r·size, (r+1)·size)), and each side reports, per non-empty range, three aggregates:
 *
 *   count, Σ id, Σ id²   (both sums modulo 2^64 — ClickHouse's UInt64 arithmetic wraps there, and
 *                          PostgreSQL's exact numeric sums are reduced the same way here)
 *
 * Equal triples mean equal multisets of ids for any realistic difference: a missing, extra or
 * duplicated id changes the count or Σ id, and a set of up to two missing plus two extra ids with
 * the same count and Σ id is told apart by Σ id². No `uniqExact` is needed: a duplicate in
 * ClickHouse raises its count above PostgreSQL's. Only a range whose triples differ is fetched
 * from both sides (≤ rangeSize ids each) and compared id by id; the report keeps counts and a few
 * example ids, never the ids themselves.
 *
 * The aggregates of many ranges come back from one query per side (`rangesPerQuery` ranges, a
 * GROUP BY over the range number), so a table of 1,000,000 consecutive ids costs two aggregate
 * queries per side. Empty stretches of the id space are jumped over: after each window, the next
 * window starts at the smallest id at or after its end, on either side.
 *
 * PostgreSQL is read in one REPEATABLE READ, READ ONLY transaction (one consistent snapshot);
 * ClickHouse has no such thing, so rows that arrive during a run may show as differences — run it
 * when the pipeline is idle, or read a non-zero result twice.
 */
import pg from 'pg';
import { checkClickHouse, clickhouseErrorText, clickhouseTableExists, createClickHouse, type ClickHouseClient } from './clickhouse.js';
import type { Config } from './config.js';
import { pgAddress } from './config.js';
import { isPgConnectionError, pgConnectionConfig, pgUnreachableMessage } from './db.js';
import { describeError, StreamerError, UnreachableError } from './errors.js';
import type { Logger } from './logger.js';
import { COUNT_FAILED, COUNT_PENDING } from './sql.js';

export interface VerifyOptions {
  /** Ids per range: the unit that is compared by aggregates and, when it differs, fetched whole. Default 100,000. */
  rangeSize?: number;
  /** Example ids kept per kind of difference. Default 10. */
  examples?: number;
  /** Ranges whose aggregates one query returns (a window of rangeSize × rangesPerQuery ids). Default 1,000. */
  rangesPerQuery?: number;
}

export interface VerifyReport extends Tally {
  /** Rows of PostgreSQL's user_login. */
  postgresRows: number;
  /** Rows of ClickHouse's user_login, duplicates included (count() without FINAL). */
  clickhouseRows: number;
  /** Rows not yet published (sent_to_kafka IS NOT TRUE and not recorded failed). */
  pending: number;
  /** Rows recorded in streamer_failed_rows (Kafka refused them). */
  failed: number;
  rangeSize: number;
  /** Non-empty ranges compared. */
  rangesChecked: number;
  /** Ranges whose aggregates differed and were compared id by id. */
  rangesDiffering: number;
  /** missing === 0 && duplicated === 0 */
  ok: boolean;
}

const MOD64 = 1n << 64n;
/** Ids are JS numbers: verify walks ids from 0 up to 2^53 (SERIAL and realistic BIGSERIAL ids). */
const ID_LIMIT = 2 ** 53;

// ---- PostgreSQL: values as parameters; ids cast to bigint so that a SERIAL (int4) column can be
// compared with windows beyond 2^31 without "integer out of range".
const PG_RANGE_SUMS = `
SELECT (id::bigint / $3::bigint)::text AS bucket, count(*)::text AS n, sum(id::bigint)::text AS s,
       sum(id::numeric * id::numeric)::text AS q
  FROM user_login
 WHERE id >= $1::bigint AND id < $2::bigint
 GROUP BY 1`;
const PG_NEXT_ID = `SELECT min(id)::text AS m FROM user_login WHERE id >= $1::bigint`;
const PG_MIN_ID = `SELECT min(id)::text AS m FROM user_login`;
const PG_RANGE_IDS = `
SELECT u.id::bigint::text AS id, u.sent_to_kafka IS TRUE AS sent
  FROM user_login u
 WHERE u.id >= $1::bigint AND u.id < $2::bigint
 ORDER BY u.id`; // the column, not the text alias (which would sort 10 before 9)

// ---- ClickHouse: 18.16 has no query parameters ({name:Type} needs 19.x+), so the bounds are
// interpolated — only integers this module computed and checked with Number.isSafeInteger, and the
// database name, which config.ts restricts to [A-Za-z_][A-Za-z0-9_]*.
const chRangeSums = (table: string, lo: number, hi: number, size: number) => `
SELECT toString(intDiv(id, ${int(size)})) AS bucket, toString(count()) AS n, toString(sum(id)) AS s,
       toString(sum(id * id)) AS q
  FROM ${table}
 WHERE id >= ${int(lo)} AND id < ${int(hi)}
 GROUP BY bucket`;
// min() of no rows is 0 on ClickHouse (no NULL, no minOrNull on 18.16): count() tells them apart.
const chNextId = (table: string, lo: number) => `SELECT toString(count()) AS n, toString(min(id)) AS m FROM ${table} WHERE id >= ${int(lo)}`;
// Aliases must not reuse a column name: ClickHouse aliases are visible in WHERE, so
// `toString(id) AS id` would turn `id >= 5` into a String-vs-number comparison (Code 43).
// Dead letters of the topic whose key is an id of the range (keys are the id as decimal text).
const chDeadIds = (table: string, topic: string, lo: number, hi: number) => `
SELECT DISTINCT toString(toUInt64OrZero(key)) AS i
  FROM ${table}
 WHERE topic = '${topic}' AND toUInt64OrZero(key) >= ${int(lo)} AND toUInt64OrZero(key) < ${int(hi)}`;
const chRangeIds = (table: string, lo: number, hi: number) => `
SELECT toString(id) AS i, toString(count()) AS n
  FROM ${table}
 WHERE id >= ${int(lo)} AND id < ${int(hi)}
 GROUP BY id
 ORDER BY id`;

function int(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`bug: ${n} is not an id bound`);
  return String(n);
}

/** count, Σ id mod 2^64, Σ id² mod 2^64 of one range on one side. */
export interface RangeSums {
  count: bigint;
  sum: bigint;
  sumSq: bigint;
}

export function toSums(n: string, s: string | null, q: string | null): RangeSums {
  const mod = (v: string | null) => ((BigInt(v ?? '0') % MOD64) + MOD64) % MOD64;
  return { count: BigInt(n), sum: mod(s), sumSq: mod(q) };
}

export function sumsEqual(a: RangeSums | undefined, b: RangeSums | undefined): boolean {
  if (!a || !b) return !a && !b;
  return a.count === b.count && a.sum === b.sum && a.sumSq === b.sumSq;
}

/** The running result of the id-by-id comparisons. */
export interface Tally {
  /** Ids PostgreSQL marked sent (sent_to_kafka = TRUE) that ClickHouse does not have, and that the consumer did not dead-letter. Fails verify. */
  missing: number;
  /** Ids PostgreSQL marked sent that ClickHouse does not have because the consumer dead-lettered them (streamer_dead_letters). Does not fail verify: each was refused with a reason. */
  deadLettered: number;
  /** Ids not marked sent (pending or failed) that ClickHouse does not have yet. Does not fail verify. */
  notYetSent: number;
  /** Ids ClickHouse holds more than once (not merged away yet). Fails verify. */
  duplicated: number;
  /** Ids ClickHouse has and PostgreSQL does not (deleted from PostgreSQL since). Does not fail verify. */
  extra: number;
  missingExamples: number[];
  deadLetteredExamples: number[];
  notYetSentExamples: number[];
  duplicatedExamples: number[];
  extraExamples: number[];
}

export function emptyTally(): Tally {
  return {
    missing: 0,
    deadLettered: 0,
    notYetSent: 0,
    duplicated: 0,
    extra: 0,
    missingExamples: [],
    deadLetteredExamples: [],
    notYetSentExamples: [],
    duplicatedExamples: [],
    extraExamples: [],
  };
}

/**
 * Compares one range id by id. Both lists are sorted by id; `copies` is how many rows ClickHouse
 * holds for the id; `dead` holds the ids of the range the consumer dead-lettered. Adds to
 * `tally`, keeping at most `examples` ids of each kind.
 */
export function compareRange(
  pgIds: ReadonlyArray<{ id: number; sent: boolean }>,
  chIds: ReadonlyArray<{ id: number; copies: number }>,
  tally: Tally,
  examples: number,
  dead: ReadonlySet<number> = new Set(),
): void {
  const note = (kind: 'missing' | 'deadLettered' | 'notYetSent' | 'duplicated' | 'extra', id: number) => {
    tally[kind]++;
    const list = tally[`${kind}Examples`];
    if (list.length < examples) list.push(id);
  };
  let i = 0;
  let j = 0;
  while (i < pgIds.length || j < chIds.length) {
    const p = pgIds[i];
    const c = chIds[j];
    if (p && (!c || p.id < c.id)) {
      note(!p.sent ? 'notYetSent' : dead.has(p.id) ? 'deadLettered' : 'missing', p.id);
      i++;
      continue;
    }
    // c exists here, and either p is past it (an extra id) or both hold the same id.
    if (!p || c!.id < p.id) note('extra', c!.id);
    else i++;
    if (c!.copies > 1) note('duplicated', c!.id);
    j++;
  }
}

/** The range that holds `id`, as its first id. */
export const rangeStart = (id: number, size: number): number => Math.floor(id / size) * size;

export async function verify(config: Config, logger: Logger, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const rangeSize = opts.rangeSize ?? 100_000;
  const examples = opts.examples ?? 10;
  const rangesPerQuery = opts.rangesPerQuery ?? 1000;
  for (const [name, v, max] of [['rangeSize', rangeSize, 10_000_000], ['examples', examples, 10_000], ['rangesPerQuery', rangesPerQuery, 1_000_000]] as const) {
    if (!Number.isSafeInteger(v) || v < (name === 'examples' ? 0 : 1) || v > max) {
      throw new StreamerError(`verify: ${name}=${v} is not valid: expected a whole number up to ${max}`);
    }
  }
  const log = logger.child({ component: 'verify' });
  const started = Date.now();
  const table = `${config.clickhouseDatabase}.user_login`;
  const deadTable = `${config.clickhouseDatabase}.streamer_dead_letters`;
  // A window is a whole query; 5 min covers a window of 100M rows on a slow server.
  const ch = createClickHouse(config, logger, { database: null, requestTimeoutMs: 300_000 });
  const db = new pg.Client(pgConnectionConfig(config, 'streamer-verify'));
  try {
    await checkClickHouse(ch, config);
    await assertClickHouseTable(ch, config);
    try {
      await db.connect();
    } catch (err) {
      if (isPgConnectionError(err)) throw new UnreachableError(pgUnreachableMessage(config, err), err);
      throw new StreamerError(`PostgreSQL at ${pgAddress(config.databaseUrl)} refused us: ${describeError(err)} — check DATABASE_URL`, { cause: err });
    }
    await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const pgQuery = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> => {
      try {
        return (await db.query<R>(sql, params)).rows;
      } catch (err) {
        if ((err as { code?: string }).code === '42P01') {
          throw new StreamerError(`PostgreSQL at ${pgAddress(config.databaseUrl)} has no table user_login or streamer_failed_rows — run "streamer migrate"`, { cause: err });
        }
        throw err;
      }
    };
    const chQuery = async <R>(query: string): Promise<R[]> => {
      try {
        return await (await ch.query({ query, format: 'JSONEachRow' })).json<R>();
      } catch (err) {
        throw new StreamerError(`ClickHouse query of ${table} failed: ${clickhouseErrorText(err)}`, { cause: err });
      }
    };

    const pending = Number((await pgQuery<{ n: string }>(COUNT_PENDING))[0]?.n ?? 0);
    const failed = Number((await pgQuery<{ n: string }>(COUNT_FAILED))[0]?.n ?? 0);
    const pgMin = (await pgQuery<{ m: string | null }>(PG_MIN_ID))[0]?.m;
    if (pgMin != null && BigInt(pgMin) < 0n) {
      throw new StreamerError(`user_login has negative ids (from ${pgMin}): ClickHouse stores id as UInt64, so they cannot be replicated, and verify does not cover them`);
    }

    /** The first id at or after `from` on either side, as the start of its range; null past the end. */
    const nextWindow = async (from: number): Promise<number | null> => {
      const [p, c] = await Promise.all([pgQuery<{ m: string | null }>(PG_NEXT_ID, [String(from)]), chQuery<{ n: string; m: string }>(chNextId(table, from))]);
      const ids: bigint[] = [];
      if (p[0]?.m != null) ids.push(BigInt(p[0].m));
      if (c[0] && c[0].n !== '0') ids.push(BigInt(c[0].m));
      if (ids.length === 0) return null;
      const first = ids.reduce((a, b) => (b < a ? b : a));
      if (first >= BigInt(ID_LIMIT)) throw new StreamerError(`user_login has ids at or above 2^53 (${first}): verify compares ids up to 2^53 only`);
      return rangeStart(Number(first), rangeSize);
    };

    const tally = emptyTally();
    let postgresRows = 0;
    let clickhouseRows = 0;
    let rangesChecked = 0;
    let rangesDiffering = 0;
    for (let lo = await nextWindow(0); lo !== null; ) {
      const hi = Math.min(lo + rangeSize * rangesPerQuery, ID_LIMIT);
      const [pgRanges, chRanges] = await Promise.all([
        pgQuery<{ bucket: string; n: string; s: string | null; q: string | null }>(PG_RANGE_SUMS, [String(lo), String(hi), String(rangeSize)]),
        chQuery<{ bucket: string; n: string; s: string; q: string }>(chRangeSums(table, lo, hi, rangeSize)),
      ]);
      const pgSums = new Map(pgRanges.map((r) => [Number(r.bucket), toSums(r.n, r.s, r.q)]));
      const chSums = new Map(chRanges.map((r) => [Number(r.bucket), toSums(r.n, r.s, r.q)]));
      const ranges = [...new Set([...pgSums.keys(), ...chSums.keys()])].sort((a, b) => a - b);
      for (const r of ranges) {
        rangesChecked++;
        postgresRows += Number(pgSums.get(r)?.count ?? 0n);
        clickhouseRows += Number(chSums.get(r)?.count ?? 0n);
        if (sumsEqual(pgSums.get(r), chSums.get(r))) continue;
        rangesDiffering++;
        const [from, to] = [r * rangeSize, Math.min((r + 1) * rangeSize, ID_LIMIT)];
        const [pgIds, chIds, deadIds] = await Promise.all([
          pgQuery<{ id: string; sent: boolean }>(PG_RANGE_IDS, [String(from), String(to)]),
          chQuery<{ i: string; n: string }>(chRangeIds(table, from, to)),
          // The topic name is interpolated inside quotes: config.ts allows [A-Za-z0-9._-] only.
          chQuery<{ i: string }>(chDeadIds(deadTable, config.kafkaTopic, from, to)),
        ]);
        compareRange(
          pgIds.map((x) => ({ id: Number(x.id), sent: x.sent })),
          chIds.map((x) => ({ id: Number(x.i), copies: Number(x.n) })),
          tally,
          examples,
          new Set(deadIds.map((x) => Number(x.i))),
        );
        log.debug({ from, to, postgres: pgIds.length, clickhouse: chIds.length }, 'range differs: compared id by id');
      }
      log.debug({ from: lo, to: hi, ranges: ranges.length }, 'window compared');
      lo = hi >= ID_LIMIT ? null : await nextWindow(hi);
    }
    await db.query('COMMIT');

    const report: VerifyReport = {
      postgresRows,
      clickhouseRows,
      pending,
      failed,
      ...tally,
      rangeSize,
      rangesChecked,
      rangesDiffering,
      ok: tally.missing === 0 && tally.duplicated === 0,
    };
    log.info({ ...report, durationMs: Date.now() - started }, report.ok ? 'verify: ClickHouse matches PostgreSQL' : 'verify: ClickHouse differs from PostgreSQL');
    return report;
  } finally {
    await db.end().catch(() => {});
    await ch.close();
  }
}

/** A clear error when CLICKHOUSE_DATABASE.user_login is missing (a query would say only "Code: 60"). */
async function assertClickHouseTable(ch: ClickHouseClient, config: Config): Promise<void> {
  if (!(await clickhouseTableExists(ch, config))) {
    throw new StreamerError(`ClickHouse has no table ${config.clickhouseDatabase}.user_login — run "streamer migrate" (or check CLICKHOUSE_DATABASE)`);
  }
}
