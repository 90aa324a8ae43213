/**
 * `verify`: does ClickHouse hold what PostgreSQL holds — every row, its newest values, nothing a
 * delete removed, and each (key, version) once?
 *
 * Per table, both sides are cut into buckets — ranges of the key for a one-column integer key
 * (`rangeSize` values each), else the first three hex digits of the md5 of the key's canonical text
 * (4,096 buckets) — and each side reports, per bucket, its row count and the sum (mod 2^64) of the
 * first 64 bits of every row's hash. A row's hash is the md5 of its columns' canonical texts
 * (src/tables/canonical.ts), computed in SQL on each side: PostgreSQL from its current rows,
 * ClickHouse from the newest non-deleted version of each key (`FINAL`, `_deleted = 0`). Equal pairs
 * mean equal rows; only a bucket whose pair differs is fetched, key by key with its hash, from both
 * sides, and each difference is named:
 *
 *   missing            in PostgreSQL, not in ClickHouse                                   fails
 *   stale              in both, other values (an older version, or a change that was lost) fails
 *   deletedButPresent  in ClickHouse, gone from PostgreSQL                                 fails
 *   notYetSent         any of those, while the key has a change not published yet (pending,
 *                      or recorded in streamer_failed_rows)                                 reported
 *   deadLettered       any of those, for a key the consumer dead-lettered (streamer_dead_letters) reported
 * and, over the whole table without FINAL, duplicated = rows − distinct (key, version): a version
 * stored twice (fails).
 *
 * PostgreSQL is read in one REPEATABLE READ, READ ONLY transaction (one snapshot); ClickHouse has
 * no such thing, so changes that arrive during a run may show as differences — run it when the
 * pipeline is idle, or read a non-zero result twice. Memory is bounded by one bucket's keys.
 */
import pg from 'pg';
import type { Config } from '../config/config.js';
import { parseTableName, tableKey } from '../config/tables.js';
import { StreamerError, UnreachableError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { isPgConnectionError, pgConnectionConfig, pgFailure, pgUnreachableMessage } from '../capture/db.js';
import { keyTextSql } from '../capture/plans.js';
import { shapeOf } from '../capture/pg-migrate.js';
import { describeShapeChange } from '../capture/producer.js';
import { canonicalPair, type CanonicalPair } from '../tables/canonical.js';
import { chIdent, chLiteral, pgIdent } from '../tables/identifiers.js';
import { buildSpec, readCatalog } from '../tables/introspect.js';
import { PG_TEXT_SETTINGS, type PgColumn } from '../tables/pg-types.js';
import { captureObjects, type TableSpec } from '../tables/spec.js';
import { checkClickHouse, clickhouseErrorText, createClickHouse } from '../sink/clickhouse.js';
import { columnsOf } from '../sink/clickhouse-migrate.js';

export interface VerifyOptions {
  /** Key values per range, for one-column integer keys. Default 100,000. */
  rangeSize?: number;
  /** Example keys kept per kind of difference. Default 10. */
  examples?: number;
  /** Ranges whose sums one query returns. Default 1,000. */
  rangesPerQuery?: number;
  /** Only this table (`verify --table`). */
  table?: string;
}

const KINDS = ['missing', 'stale', 'deletedButPresent', 'duplicated', 'notYetSent', 'deadLettered'] as const;
type Kind = (typeof KINDS)[number];

export interface TableReport {
  table: string;
  clickhouseTable: string;
  /** Rows of the PostgreSQL table. */
  postgresRows: number;
  /** Keys ClickHouse holds a live (newest, not deleted) row of. */
  clickhouseRows: number;
  /** Rows of the ClickHouse table without FINAL: every version stored, deletes included. */
  clickhouseStoredRows: number;
  missing: number;
  stale: number;
  deletedButPresent: number;
  /** (key, version) pairs stored more than once, not merged away yet. */
  duplicated: number;
  notYetSent: number;
  deadLettered: number;
  examples: Record<Kind, string[]>;
  buckets: number;
  bucketsDiffering: number;
  /**
   * Set when the table changed since "streamer migrate" installed its capture (a column added,
   * dropped, renamed or of another type): its changes wait, nothing was compared, and the report
   * fails until migrate runs.
   */
  shapeChange: string | null;
  ok: boolean;
}

export interface VerifyReport {
  /** Every table's report. */
  tables: TableReport[];
  /** Sums over the tables, for scripts that read one number. */
  postgresRows: number;
  clickhouseRows: number;
  missing: number;
  stale: number;
  deletedButPresent: number;
  duplicated: number;
  notYetSent: number;
  deadLettered: number;
  /** The first tables' examples of missing and duplicated keys. */
  missingExamples: string[];
  duplicatedExamples: string[];
  ok: boolean;
}

const MOD64 = 1n << 64n;
const mod64 = (v: string | null | undefined) => ((BigInt(v ?? '0') % MOD64) + MOD64) % MOD64;

/** A bucket's figures on one side. */
export interface BucketSums {
  count: bigint;
  sum: bigint;
}

export function sumsEqual(a: BucketSums | undefined, b: BucketSums | undefined): boolean {
  if (!a || !b) return !a && !b;
  return a.count === b.count && a.sum === b.sum;
}

/** One key of a differing bucket, as each side reports it. */
export interface KeyRow {
  key: string;
  hash: string;
}

export interface KeyFacts {
  /** Keys with a change not yet published (pending, or in streamer_failed_rows). */
  pending: ReadonlySet<string>;
  /** Keys the consumer dead-lettered. */
  dead: ReadonlySet<string>;
}

export function emptyCounts(): Pick<TableReport, Kind | 'examples'> {
  return {
    missing: 0,
    stale: 0,
    deletedButPresent: 0,
    duplicated: 0,
    notYetSent: 0,
    deadLettered: 0,
    examples: { missing: [], stale: [], deletedButPresent: [], duplicated: [], notYetSent: [], deadLettered: [] },
  };
}

/**
 * Compares one bucket key by key (both lists in any order). `facts` are looked up by the key's
 * canonical text. Adds to `into`, keeping at most `examples` keys of each kind.
 */
/** A canonical key (`<bytes>:<text>` per column, '-' for NULL) as people read it: `42`, `(7, 2024-01-01)`. */
export function displayKey(canon: string): string {
  const parts: string[] = [];
  for (let i = 0; i < canon.length; ) {
    if (canon[i] === '-') {
      parts.push('NULL');
      i++;
      continue;
    }
    const colon = canon.indexOf(':', i);
    const bytes = Number(canon.slice(i, colon));
    if (colon < 0 || !Number.isSafeInteger(bytes)) return canon;
    const rest = Buffer.from(canon.slice(colon + 1), 'utf8');
    const text = rest.subarray(0, bytes).toString('utf8');
    parts.push(text);
    i = colon + 1 + text.length;
  }
  return parts.length === 1 ? (parts[0] as string) : `(${parts.join(', ')})`;
}

export function compareBucket(pgRows: readonly KeyRow[], chRows: readonly KeyRow[], facts: KeyFacts, into: Pick<TableReport, Kind | 'examples'>, examples: number): void {
  const note = (kind: Kind, key: string) => {
    into[kind]++;
    if (into.examples[kind].length < examples) into.examples[kind].push(displayKey(key));
  };
  const ch = new Map(chRows.map((r) => [r.key, r.hash]));
  const classify = (kind: 'missing' | 'stale' | 'deletedButPresent', key: string) =>
    note(facts.dead.has(key) ? 'deadLettered' : facts.pending.has(key) ? 'notYetSent' : kind, key);
  for (const p of pgRows) {
    const h = ch.get(p.key);
    if (h === undefined) classify('missing', p.key);
    else if (h !== p.hash) classify('stale', p.key);
    ch.delete(p.key);
  }
  for (const key of ch.keys()) classify('deletedButPresent', key);
}

/** What verify needs of a table: both sides' SQL, generated from its spec and ClickHouse columns. */
export interface VerifyPlan {
  /** A one-column integer key: buckets are ranges of it; else hash buckets. */
  integerKey: string | null;
  pgKey: string;
  pgHash: string;
  chKey: string;
  chHash: string;
  chTable: string;
}

export function verifyPlan(spec: TableSpec, database: string, chTypes: ReadonlyMap<string, string>): VerifyPlan {
  const pairs: Array<{ name: string; pair: CanonicalPair }> = [];
  for (const c of spec.columns) {
    const t = chTypes.get(c.name);
    if (!t) throw new StreamerError(`ClickHouse table ${database}.${spec.clickhouseTable} has no column ${c.name} — run "streamer migrate"`);
    const nullFlag = chTypes.has(`${c.name}__is_null`) ? `${c.name}__is_null` : null;
    const pair = canonicalPair(c, t, 't', nullFlag);
    if (!pair) throw new StreamerError(`verify cannot compare ${tableKey(spec)}.${c.name} (${c.type}) with ClickHouse's ${t}`);
    pairs.push({ name: c.name, pair });
  }
  const keyPairs = spec.keyColumns.map((k) => (pairs.find((p) => p.name === k) as { pair: CanonicalPair }).pair);
  const concatPg = (xs: string[]) => (xs.length === 1 ? (xs[0] as string) : `concat(${xs.join(', ')})`);
  const concatCh = (xs: string[]) => (xs.length === 1 ? (xs[0] as string) : `concat(${xs.join(', ')})`);
  const keyCol = spec.columns.find((c) => c.name === spec.keyColumns[0]);
  const integerKey = spec.keyColumns.length === 1 && keyCol && ['int2', 'int4', 'int8'].includes(keyCol.typname) && !keyCol.element ? keyCol.name : null;
  return {
    integerKey,
    pgKey: concatPg(keyPairs.map((p) => p.pg)),
    pgHash: `md5(${concatPg(pairs.map((p) => p.pair.pg))})`,
    chKey: concatCh(keyPairs.map((p) => p.ch)),
    chHash: `lower(hex(MD5(${concatCh(pairs.map((p) => p.pair.ch))})))`,
    chTable: `${chIdent(database)}.${chIdent(spec.clickhouseTable)}`,
  };
}

// The first 64 bits of a row's hash, as a number both sides agree on (big-endian, mod 2^64).
const pgHash64 = (h: string) => `('x' || substr(${h}, 1, 16))::bit(64)::bigint::numeric`;
const chHash64 = (h: string) => `reinterpretAsUInt64(reverse(unhex(substring(${h}, 1, 16))))`;

/**
 * verify's SQL, by side (pg-boss style: named queries, not strings inside the loop). PostgreSQL's
 * take parameters; ClickHouse's (18.16 has no query parameters) get numbers and escaped literals.
 * The conformance suite runs the ClickHouse ones on a current engine against the PostgreSQL ones.
 */
export function pgVerifyQueries(spec: TableSpec, plan: VerifyPlan) {
  const t = spec.qualified;
  const k = plan.integerKey ? pgIdent(plan.integerKey) : null;
  const sums = (bucket: string) => `SELECT ${bucket}::text AS b, count(*)::text AS n, sum(${pgHash64(plan.pgHash)})::text AS s FROM ${t} t`;
  return {
    /** $1: the smallest key at or above it (omitted: the smallest). */
    minKey: (from: boolean) => `SELECT min(t.${k})::text AS m FROM ${t} t${from ? ` WHERE t.${k} >= $1` : ''}`,
    /** $1, $2: the window; $3: the range size. */
    rangeSums: `${sums(`(t.${k}::bigint / $3::bigint)`)} WHERE t.${k} >= $1 AND t.${k} < $2 GROUP BY 1`,
    /** $1, $2: one range. */
    rangeRows: `SELECT ${plan.pgKey} AS key, ${plan.pgHash} AS hash FROM ${t} t WHERE t.${k} >= $1 AND t.${k} < $2`,
    hashSums: `${sums(`substr(md5(${plan.pgKey}), 1, 3)`)} GROUP BY 1`,
    /** $1: the bucket. */
    hashRows: `SELECT ${plan.pgKey} AS key, ${plan.pgHash} AS hash FROM ${t} t WHERE substr(md5(${plan.pgKey}), 1, 3) = $1`,
  };
}

/**
 * ClickHouse resolves an alias before a column of the same name, anywhere in the query (a table
 * with a column `n` turned `count() AS n` into "an aggregate inside an aggregate"): every alias of
 * a query that also reads the user's columns carries this prefix, and `unprefixed` removes it.
 */
export const CH_ALIAS = '__streamer_';
export const unprefixed = <R>(row: Record<string, unknown>): R =>
  Object.fromEntries(Object.entries(row).map(([k, v]) => [k.startsWith(CH_ALIAS) ? k.slice(CH_ALIAS.length) : k, v])) as R;

export function chVerifyQueries(spec: TableSpec, plan: VerifyPlan) {
  const live = `${plan.chTable} AS t FINAL WHERE _deleted = 0`;
  const ck = plan.integerKey ? chIdent(plan.integerKey) : '';
  const keyCols = spec.keyColumns.map(chIdent).join(', ');
  const a = (name: string) => `${CH_ALIAS}${name}`;
  const hashBucket = `substring(lower(hex(MD5(${plan.chKey}))), 1, 3)`;
  const sums = (bucket: string) => `SELECT toString(${bucket}) AS ${a('b')}, toString(count()) AS ${a('n')}, toString(sum(${chHash64(plan.chHash)})) AS ${a('s')} FROM ${live}`;
  return {
    /** Every stored row, and its distinct (key, version) pairs: more rows than pairs = duplicated versions. */
    stored: `SELECT toString(count()) AS ${a('n')}, toString(uniqExact(${keyCols}, _version)) AS ${a('u')} FROM ${plan.chTable}`,
    duplicatedExamples: (limit: number) =>
      `SELECT ${plan.chKey} AS ${a('k')}, toString(_version) AS ${a('v')} FROM ${plan.chTable} AS t GROUP BY ${a('k')}, _version HAVING count() > 1 LIMIT ${limit}`,
    minKey: (from: bigint | null) => `SELECT toString(count()) AS ${a('n')}, toString(min(${ck})) AS ${a('m')} FROM ${live}${from === null ? '' : ` AND ${ck} >= ${from}`}`,
    rangeSums: (size: number, lo: bigint, hi: bigint) => `${sums(`intDiv(${ck}, ${size})`)} AND ${ck} >= ${lo} AND ${ck} < ${hi} GROUP BY ${a('b')}`,
    rangeRows: (from: bigint, to: bigint) => `SELECT ${plan.chKey} AS ${a('key')}, ${plan.chHash} AS ${a('hash')} FROM ${live} AND ${ck} >= ${from} AND ${ck} < ${to}`,
    hashSums: `${sums(hashBucket)} GROUP BY ${a('b')}`,
    hashRows: (bucket: string) => `SELECT ${plan.chKey} AS ${a('key')}, ${plan.chHash} AS ${a('hash')} FROM ${live} AND ${hashBucket} = ${chLiteral(bucket)}`,
  };
}

/** Bucket figures as both sides return them → comparable sums (mod 2^64). */
export const bucketSums = (rows: Array<{ b: string; n: string; s: string | null }>): Map<string, BucketSums> =>
  new Map(rows.map((r) => [String(r.b), { count: BigInt(r.n), sum: mod64(r.s) }]));

export async function verify(config: Config, logger: Logger, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const rangeSize = opts.rangeSize ?? 100_000;
  const examples = opts.examples ?? 10;
  const rangesPerQuery = opts.rangesPerQuery ?? 1000;
  for (const [name, v, max] of [['rangeSize', rangeSize, 10_000_000], ['examples', examples, 10_000], ['rangesPerQuery', rangesPerQuery, 1_000_000]] as const) {
    if (!Number.isSafeInteger(v) || v < (name === 'examples' ? 0 : 1) || v > max) {
      throw new StreamerError(`verify: ${name}=${v} is not valid: expected a whole number up to ${max}`);
    }
  }
  let wanted: string | null = null;
  if (opts.table !== undefined) {
    try {
      wanted = tableKey(parseTableName(opts.table));
    } catch (err) {
      throw new StreamerError(`verify --table ${opts.table}: ${(err as Error).message}`);
    }
  }
  const tables = wanted === null ? config.tables : config.tables.filter((t) => tableKey(t) === wanted);
  if (tables.length === 0) throw new StreamerError(`verify --table ${opts.table}: not one of STREAMER_TABLES (${config.tables.map(tableKey).join(', ')})`);
  const log = logger.child({ component: 'verify' });
  // A window is a whole query; 5 min covers a window of 100M rows on a slow server.
  const ch = createClickHouse(config, logger, { database: null, requestTimeoutMs: 300_000 });
  const db = new pg.Client({ ...pgConnectionConfig(config, 'streamer-verify'), options: Object.entries(PG_TEXT_SETTINGS).map(([k, v]) => `-c ${k}=${v.replace(/ /g, '\\ ')}`).join(' ') });
  const reports: TableReport[] = [];
  try {
    await checkClickHouse(ch, config);
    try {
      await db.connect();
    } catch (err) {
      if (isPgConnectionError(err)) throw new UnreachableError(pgUnreachableMessage(config, err), err);
      throw pgFailure(config, err);
    }
    await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    for (const t of tables) {
      const started = Date.now();
      const spec = buildSpec(t, await readCatalog(db, t.schema, t.table).catch((err: unknown) => {
        throw pgFailure(config, err);
      }));
      const recorded = (await db.query<{ capture: string; columns: string }>('SELECT capture, columns FROM streamer_tables WHERE table_name = $1', [tableKey(spec)]).catch(() => ({ rows: [] }))).rows[0];
      const shape = shapeOf(spec);
      if (!recorded || recorded.capture !== shape.capture || recorded.columns !== shape.columns) {
        const why = recorded
          ? `${tableKey(spec)} changed since "streamer migrate" installed its capture (${describeShapeChange(recorded.columns, shape.columns)}): its changes wait in PostgreSQL — run "streamer migrate"`
          : `the capture of ${tableKey(spec)} is not installed — run "streamer migrate"`;
        reports.push({ table: tableKey(spec), clickhouseTable: `${config.clickhouseDatabase}.${spec.clickhouseTable}`, postgresRows: 0, clickhouseRows: 0, clickhouseStoredRows: 0, ...emptyCounts(), buckets: 0, bucketsDiffering: 0, shapeChange: why, ok: false });
        log.error({ table: tableKey(spec) }, why);
        continue;
      }
      const cols = await columnsOf(ch, config.clickhouseDatabase, spec.clickhouseTable);
      if (!cols) throw new StreamerError(`ClickHouse has no table ${config.clickhouseDatabase}.${spec.clickhouseTable} (for ${tableKey(spec)}) — run "streamer migrate" (or check CLICKHOUSE_DATABASE)`);
      const report = await verifyTable(db, ch, config, spec, verifyPlan(spec, config.clickhouseDatabase, new Map(cols.map((c) => [c.name, c.type]))), { rangeSize, rangesPerQuery, examples });
      reports.push(report);
      log.info({ ...report, durationMs: Date.now() - started }, report.ok ? `verify: ${report.table} matches` : `verify: ${report.table} differs`);
    }
    await db.query('COMMIT');
  } finally {
    await db.end().catch(() => {});
    await ch.close();
  }
  const sum = (k: 'postgresRows' | 'clickhouseRows' | Kind) => reports.reduce((s, r) => s + r[k], 0);
  return {
    tables: reports,
    postgresRows: sum('postgresRows'),
    clickhouseRows: sum('clickhouseRows'),
    missing: sum('missing'),
    stale: sum('stale'),
    deletedButPresent: sum('deletedButPresent'),
    duplicated: sum('duplicated'),
    notYetSent: sum('notYetSent'),
    deadLettered: sum('deadLettered'),
    missingExamples: reports.flatMap((r) => r.examples.missing).slice(0, examples),
    duplicatedExamples: reports.flatMap((r) => r.examples.duplicated).slice(0, examples),
    ok: reports.every((r) => r.ok),
  };
}

async function verifyTable(
  db: pg.Client,
  ch: ReturnType<typeof createClickHouse>,
  config: Config,
  spec: TableSpec,
  plan: VerifyPlan,
  o: { rangeSize: number; rangesPerQuery: number; examples: number },
): Promise<TableReport> {
  const name = tableKey(spec);
  const chQuery = async <R>(query: string): Promise<R[]> => {
    try {
      return (await (await ch.query({ query, format: 'JSONEachRow' })).json<Record<string, unknown>>()).map((r) => unprefixed<R>(r));
    } catch (err) {
      throw new StreamerError(`ClickHouse query of ${plan.chTable} failed: ${clickhouseErrorText(err)}`, { cause: err });
    }
  };
  const pgQuery = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> => {
    try {
      return (await db.query<R>(sql, params)).rows;
    } catch (err) {
      throw pgFailure(config, err);
    }
  };
  const counts = emptyCounts();
  const pq = pgVerifyQueries(spec, plan);
  const cq = chVerifyQueries(spec, plan);
  // Duplicated versions, over every stored row.
  const [dup] = await chQuery<{ n: string; u: string }>(cq.stored);
  const stored = Number(dup?.n ?? 0);
  const duplicated = stored - Number(dup?.u ?? 0);
  if (duplicated > 0) {
    counts.duplicated = duplicated;
    const ex = await chQuery<{ k: string; v: string }>(cq.duplicatedExamples(o.examples));
    counts.examples.duplicated = ex.map((e) => `${displayKey(e.k)} (version ${e.v})`);
  }

  // Keys whose differences are not failures: pending changes, failed rows, dead letters.
  const facts = await keyFacts(pgQuery, chQuery, spec, config, plan.pgKey);

  let postgresRows = 0;
  let clickhouseRows = 0;
  let buckets = 0;
  let bucketsDiffering = 0;
  const compare = async (pgSums: Map<string, BucketSums>, chSums: Map<string, BucketSums>, fetch: (bucket: string) => Promise<[KeyRow[], KeyRow[]]>) => {
    for (const b of new Set([...pgSums.keys(), ...chSums.keys()])) {
      buckets++;
      postgresRows += Number(pgSums.get(b)?.count ?? 0n);
      clickhouseRows += Number(chSums.get(b)?.count ?? 0n);
      if (sumsEqual(pgSums.get(b), chSums.get(b))) continue;
      bucketsDiffering++;
      const [p, c] = await fetch(b);
      compareBucket(p, c, facts, counts, o.examples);
    }
  };

  if (plan.integerKey) {
    const size = o.rangeSize;
    const window = size * o.rangesPerQuery;
    // From the smallest key on either side, window by window, jumping over empty stretches.
    const next = async (from: bigint | null): Promise<bigint | null> => {
      const [p] = await pgQuery<{ m: string | null }>(pq.minKey(from !== null), from === null ? [] : [from.toString()]);
      const [c] = await chQuery<{ n: string; m: string }>(cq.minKey(from));
      const ids = [p?.m, c && c.n !== '0' ? c.m : null].filter((x): x is string => x != null).map(BigInt);
      if (ids.length === 0) return null;
      const first = ids.reduce((a, b) => (b < a ? b : a));
      return first - (((first % BigInt(size)) + BigInt(size)) % BigInt(size));
    };
    for (let lo = await next(null); lo !== null; ) {
      const hi = lo + BigInt(window);
      const [pgRows, chRows] = await Promise.all([
        pgQuery<{ b: string; n: string; s: string | null }>(pq.rangeSums, [lo.toString(), hi.toString(), size]),
        chQuery<{ b: string; n: string; s: string }>(cq.rangeSums(size, lo, hi)),
      ]);
      await compare(bucketSums(pgRows), bucketSums(chRows), async (b) => {
        const from = BigInt(b) * BigInt(size);
        const to = from + BigInt(size);
        return Promise.all([pgQuery<KeyRow>(pq.rangeRows, [from.toString(), to.toString()]), chQuery<KeyRow>(cq.rangeRows(from, to))]);
      });
      lo = await next(hi);
    }
  } else {
    const [pgRows, chRows] = await Promise.all([pgQuery<{ b: string; n: string; s: string | null }>(pq.hashSums), chQuery<{ b: string; n: string; s: string }>(cq.hashSums)]);
    await compare(bucketSums(pgRows), bucketSums(chRows), async (b) => Promise.all([pgQuery<KeyRow>(pq.hashRows, [b]), chQuery<KeyRow>(cq.hashRows(b))]));
  }
  const report: TableReport = {
    table: name,
    clickhouseTable: `${config.clickhouseDatabase}.${spec.clickhouseTable}`,
    postgresRows,
    clickhouseRows,
    clickhouseStoredRows: stored,
    ...counts,
    buckets,
    bucketsDiffering,
    shapeChange: null,
    ok: counts.missing === 0 && counts.stale === 0 && counts.deletedButPresent === 0 && counts.duplicated === 0,
  };
  return report;
}

/**
 * The canonical keys with a change not yet published (flagged rows, change-log rows, failed
 * rows) and the keys the consumer dead-lettered (by the Kafka key's text).
 */
async function keyFacts(
  pgQuery: <R extends pg.QueryResultRow>(sql: string, params?: unknown[]) => Promise<R[]>,
  chQuery: <R>(query: string) => Promise<R[]>,
  spec: TableSpec,
  config: Config,
  pgKey: string,
): Promise<KeyFacts> {
  const o = captureObjects(spec);
  const pending = new Set<string>();
  const flagged = spec.capture.kind === 'flag' ? `SELECT ${pgKey} AS k FROM ${spec.qualified} t WHERE t.${pgIdent(spec.capture.column)} IS NOT TRUE UNION ALL ` : '';
  // The change log holds each key column as text: typed again, the canonical expressions apply.
  const typed = spec.keyColumns.map((k) => `c.${pgIdent(k)}::${(spec.columns.find((col) => col.name === k) as PgColumn).type} AS ${pgIdent(k)}`).join(', ');
  for (const r of await pgQuery<{ k: string }>(`${flagged}SELECT ${pgKey} AS k FROM (SELECT ${typed} FROM ${o.changes} c WHERE c._op <> 'T') t`)) pending.add(r.k);
  // streamer_failed_rows holds the Kafka key's text; the dead letters too: map them through the table.
  const failed = await pgQuery<{ key: string }>(`SELECT key FROM streamer_failed_rows WHERE table_name = $1`, [tableKey(spec)]);
  const deadKeys = await chQuery<{ key: string }>(`SELECT DISTINCT key FROM ${chIdent(config.clickhouseDatabase)}.streamer_dead_letters WHERE topic = ${chLiteral(spec.topic)}`);
  const lookup = async (keys: string[]) => {
    const out = new Set<string>();
    if (keys.length === 0) return out;
    const rows = await pgQuery<{ k: string; kt: string }>(`SELECT ${pgKey} AS k, ${keyTextSql(spec, 't')} AS kt FROM ${spec.qualified} t WHERE ${keyTextSql(spec, 't')} = ANY($1::text[])`, [keys]);
    for (const r of rows) out.add(r.k);
    // Keys no longer in the table (deleted since) cannot be mapped: for one-column keys the text is the canonical value.
    if (spec.keyColumns.length === 1) for (const k of keys) if (!rows.some((r) => r.kt === k)) out.add(`${Buffer.byteLength(k)}:${k}`);
    return out;
  };
  for (const k of await lookup(failed.map((f) => f.key))) pending.add(k);
  return { pending, dead: await lookup(deadKeys.map((d) => d.key)) };
}


