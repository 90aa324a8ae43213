/**
 * `status`: where the pipeline stands, per table, from the three stores themselves — changes
 * waiting in PostgreSQL, the consumer group's lag per Kafka partition, rows in ClickHouse.
 * Read-only.
 *
 * A missing Kafka topic (nothing published yet) is a state, not an error: no partitions, lag 0.
 * A missing ClickHouse table is reported too (`tableExists: false`, rows 0 and a note saying what
 * to run), and so is a PostgreSQL table whose columns changed since `streamer migrate` (a note).
 * A store that cannot be read (unreachable, not migrated) puts its message in that section's
 * `error`, its figures null, and `ok` false: the other sections still show, and `status --json`
 * always prints one JSON object (issue 15), exiting 1 when `ok` is false. The top-level sections
 * add up the tables (and keep f141f4e's shape for scripts).
 */
import type { Config } from '../config/config.js';
import { pgAddress } from '../config/config.js';
import { DEFAULT_TABLES, tableKey } from '../config/tables.js';
import { describeError, StreamerError, UnreachableError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { assertPgReachable, createPool, pgFailure } from '../capture/db.js';
import { shapeOf } from '../capture/pg-migrate.js';
import { producerPlans } from '../capture/plans.js';
import { describeShapeChange } from '../capture/producer.js';
import { createKafka, kafkaUnreachableMessage } from '../kafka/kafka.js';
import { withDeadline } from '../common/retry.js';
import { checkClickHouse, clickhouseTableExists, createClickHouse } from '../sink/clickhouse.js';
import { chIdent, chLiteral, pgIdent } from '../tables/identifiers.js';
import { buildSpec, readCatalog } from '../tables/introspect.js';
import type { TableConfig } from '../tables/spec.js';

export interface PartitionLag {
  partition: number;
  /** The group's committed offset; null when it has committed none for this partition. */
  committed: string | null;
  /** The high watermark: the offset the next message will get. */
  high: string;
  /** Messages not yet consumed: high − committed, or high − low when nothing is committed. */
  lag: number;
}

/** A section that could not be read: its figures are null and `error` says why, in one line. */
type Readable<T> = { [K in keyof T]: T[K] | (T[K] extends number ? null : never) } & { error: string | null };

export interface PostgresStatus {
  /** Changes not yet published (pending rows and change-log rows, not recorded failed). */
  pending: number;
  /** Rows Kafka refused, recorded in streamer_failed_rows. */
  failed: number;
  /** All rows of the table(s). */
  total: number;
}

export interface KafkaStatus {
  topic: string;
  group: string;
  /** False before the first publish creates the topic (then partitions is empty, lag 0). */
  topicExists: boolean;
  partitions: PartitionLag[];
  totalLag: number;
}

export interface ClickHouseStatus {
  database: string;
  /** Rows stored, every version and delete included (count() without FINAL). */
  rows: number;
  /** Messages the consumer dead-lettered (streamer_dead_letters). */
  deadLetters: number;
  tableExists: boolean;
  /** Set when something needs the user's attention (the table is missing). */
  note: string | null;
}

export interface TableStatus {
  table: string;
  clickhouseTable: string;
  postgres: Readable<PostgresStatus> & { note: string | null };
  kafka: KafkaStatus & { error: string | null };
  clickhouse: Readable<ClickHouseStatus>;
}

export interface StatusReport {
  /** False when a section of a table has an error. */
  ok: boolean;
  postgres: Readable<PostgresStatus>;
  /** The first table's topic and partitions; lag summed over every table. */
  kafka: KafkaStatus & { error: string | null };
  clickhouse: Readable<ClickHouseStatus>;
  tables: TableStatus[];
}

/**
 * Lag per partition from the topic's watermarks and the group's committed offsets (kafkajs
 * reports "-1" for a partition the group has not committed). A committed offset below the low
 * watermark (retention deleted those messages) counts from the low watermark: that is all that
 * is left to consume.
 */
export function partitionLags(
  watermarks: ReadonlyArray<{ partition: number; high: string; low: string }>,
  committed: ReadonlyArray<{ partition: number; offset: string }>,
): { partitions: PartitionLag[]; totalLag: number } {
  const byPartition = new Map(committed.map((c) => [c.partition, c.offset]));
  const partitions = [...watermarks]
    .sort((a, b) => a.partition - b.partition)
    .map((w) => {
      const raw = byPartition.get(w.partition);
      const has = raw !== undefined && BigInt(raw) >= 0n;
      const high = BigInt(w.high);
      const from = has && BigInt(raw) > BigInt(w.low) ? BigInt(raw) : BigInt(w.low);
      const lag = high > from ? Number(high - from) : 0;
      return { partition: w.partition, committed: has ? raw : null, high: w.high, lag };
    });
  return { partitions, totalLag: partitions.reduce((s, p) => s + p.lag, 0) };
}

/**
 * Every table's three sections, each read on its own: one failing does not hide the others (and
 * its client is closed before this returns — before issue 15 a rejected Promise.all returned while
 * kafkajs's admin still retried, keeping the process alive).
 */
export async function status(config: Config, logger: Logger): Promise<StatusReport> {
  const [postgres, kafka, clickhouse] = await Promise.allSettled([postgresStatus(config, logger), kafkaStatus(config, logger), clickhouseStatus(config, logger)]);
  const error = (r: PromiseSettledResult<unknown>) => (r.status === 'rejected' ? describeError(r.reason) : null);
  const tables: TableStatus[] = config.tables.map((t, i) => ({
    table: tableKey(t),
    clickhouseTable: `${config.clickhouseDatabase}.${t.clickhouseTable}`,
    postgres: postgres.status === 'fulfilled' ? (postgres.value[i] as TableStatus['postgres']) : { pending: null, failed: null, total: null, note: null, error: error(postgres) },
    kafka:
      kafka.status === 'fulfilled'
        ? { ...(kafka.value[i] as KafkaStatus), error: null }
        : { topic: t.topic, group: config.kafkaGroupId, topicExists: false, partitions: [], totalLag: 0, error: error(kafka) },
    clickhouse:
      clickhouse.status === 'fulfilled'
        ? (clickhouse.value[i] as TableStatus['clickhouse'])
        : { database: config.clickhouseDatabase, rows: null, deadLetters: null, tableExists: false, note: null, error: error(clickhouse) },
  }));
  const sum = (xs: Array<number | null>) => (xs.some((x) => x === null) ? null : xs.reduce<number>((a, b) => a + (b as number), 0));
  const firstErr = (xs: Array<string | null>) => xs.find((x) => x !== null) ?? null;
  const first = tables[0] as TableStatus;
  return {
    ok: tables.every((t) => t.postgres.error === null && t.kafka.error === null && t.clickhouse.error === null),
    postgres: {
      pending: sum(tables.map((t) => t.postgres.pending)),
      failed: sum(tables.map((t) => t.postgres.failed)),
      total: sum(tables.map((t) => t.postgres.total)),
      error: firstErr(tables.map((t) => t.postgres.error)),
    },
    kafka: { ...first.kafka, topicExists: tables.every((t) => t.kafka.topicExists), totalLag: tables.reduce((a, t) => a + t.kafka.totalLag, 0), error: firstErr(tables.map((t) => t.kafka.error)) },
    clickhouse: {
      database: config.clickhouseDatabase,
      rows: sum(tables.map((t) => t.clickhouse.rows)),
      deadLetters: sum(tables.map((t) => t.clickhouse.deadLetters)),
      tableExists: tables.every((t) => t.clickhouse.tableExists),
      note: firstErr(tables.map((t) => t.clickhouse.note)),
      error: firstErr(tables.map((t) => t.clickhouse.error)),
    },
    tables,
  };
}

/** The first error of a report, as the error it was (for the one-line human form). */
export function firstError(r: StatusReport): string | null {
  for (const t of r.tables) {
    const e = t.postgres.error ?? t.kafka.error ?? t.clickhouse.error;
    if (e) return e;
  }
  return null;
}

async function postgresStatus(config: Config, logger: Logger): Promise<TableStatus['postgres'][]> {
  const pool = createPool(config, logger, 'streamer-status', {});
  try {
    await assertPgReachable(pool, config);
    const out: TableStatus['postgres'][] = [];
    for (const t of config.tables) out.push(await tablePostgres(pool, config, t));
    return out;
  } finally {
    await pool.end();
  }
}

async function tablePostgres(pool: ReturnType<typeof createPool>, config: Config, t: TableConfig): Promise<TableStatus['postgres']> {
  const name = tableKey(t);
  try {
    const catalog = await readCatalog(pool, t.schema, t.table);
    if (!catalog) {
      const fix = name === DEFAULT_TABLES ? 'run "streamer migrate" (it creates the seed\'s table)' : 'create it, or check STREAMER_TABLES and DATABASE_URL';
      throw new StreamerError(`PostgreSQL at ${pgAddress(config.databaseUrl)} has no table ${name} — ${fix}`);
    }
    const spec = buildSpec(t, catalog);
    const one = async (sql: string, params: unknown[]) => Number((await pool.query<{ n: string }>(sql, params)).rows[0]?.n ?? 0);
    let note: string | null = null;
    let rec;
    try {
      rec = (await pool.query<{ capture: string; columns: string }>('SELECT capture, columns FROM streamer_tables WHERE table_name = $1', [name])).rows[0];
    } catch (err) {
      if ((err as { code?: string }).code !== '42P01') throw err;
    }
    if (!rec) {
      throw new StreamerError(`PostgreSQL at ${pgAddress(config.databaseUrl)}: the capture of ${name} is not installed — run "streamer migrate"`);
    }
    const shape = shapeOf(spec);
    if (rec.capture !== shape.capture || rec.columns !== shape.columns) {
      note = `${name} changed since "streamer migrate" (${describeShapeChange(rec.columns, shape.columns)}): its changes wait — run "streamer migrate"`;
    }
    const [pending, failed, total] = await Promise.all([
      one(producerPlans(spec).countPending, [name]),
      one('SELECT count(*)::bigint AS n FROM streamer_failed_rows WHERE table_name = $1', [name]),
      one(`SELECT count(*)::bigint AS n FROM ${pgIdent(t.schema)}.${pgIdent(t.table)}`, []),
    ]);
    return { pending, failed, total, note, error: null };
  } catch (err) {
    const e = (err as { code?: string }).code === '42P01' ? new StreamerError(`PostgreSQL at ${pgAddress(config.databaseUrl)} has no table ${name} or streamer's own — run "streamer migrate"`) : pgFailure(config, err);
    return { pending: null, failed: null, total: null, note: null, error: describeError(e) };
  }
}

/** A connected kafkajs admin client (the type without importing kafkajs here). */
type KafkaAdmin = ReturnType<ReturnType<typeof createKafka>['admin']>;
/** What readLags needs of it: a fake in the unit tests. */
export type LagAdmin = Pick<KafkaAdmin, 'listTopics' | 'fetchTopicOffsets' | 'fetchOffsets' | 'disconnect'>;

/** A brief (quickly failing) admin client, connected; an UnreachableError naming Kafka otherwise. */
async function connectAdmin(config: Config, logger: Logger, suffix: string): Promise<KafkaAdmin> {
  const admin = createKafka(config, logger, suffix, undefined, { brief: true }).admin();
  try {
    await admin.connect();
  } catch (err) {
    await admin.disconnect().catch(() => {});
    throw new UnreachableError(kafkaUnreachableMessage(config, err), err);
  }
  return admin;
}

/** Every table's lag with one connected admin: the topics, then one offsets request per topic and one for the group. */
export async function readLags(admin: LagAdmin, config: Config): Promise<KafkaStatus[]> {
  const group = config.kafkaGroupId;
  const existing = new Set(await admin.listTopics());
  const present = config.tables.map((t) => t.topic).filter((topic) => existing.has(topic));
  const committed = present.length > 0 ? await admin.fetchOffsets({ groupId: group, topics: present }) : [];
  const out: KafkaStatus[] = [];
  for (const { topic } of config.tables) {
    if (!existing.has(topic)) {
      out.push({ topic, group, topicExists: false, partitions: [], totalLag: 0 });
      continue;
    }
    const watermarks = await admin.fetchTopicOffsets(topic);
    out.push({ topic, group, topicExists: true, ...partitionLags(watermarks, committed.find((x) => x.topic === topic)?.partitions ?? []) });
  }
  return out;
}

export async function kafkaStatus(config: Config, logger: Logger): Promise<KafkaStatus[]> {
  const admin = await connectAdmin(config, logger, '-status');
  try {
    return await readLags(admin, config);
  } finally {
    await admin.disconnect();
  }
}

/**
 * The consumer's lag gauge, read at scrape time: one admin connection kept between scrapes
 * (dropped after a failure, made again by the next scrape), scrapes arriving together share one
 * read, a read younger than `maxAgeMs` is reused, and a read answers within `timeoutMs` or fails
 * (the gauge then has no value). Before, every scrape built, connected and disconnected a client.
 */
export class LagMonitor {
  private admin: Promise<LagAdmin> | null = null;
  private inFlight: Promise<KafkaStatus[]> | null = null;
  private last: { at: number; value: KafkaStatus[] } | null = null;
  private closed = false;

  constructor(
    private readonly config: Config,
    private readonly connect: () => Promise<LagAdmin>,
    private readonly opts: { maxAgeMs: number; timeoutMs: number } = { maxAgeMs: 1000, timeoutMs: 5000 },
  ) {}

  static forConfig(config: Config, logger: Logger): LagMonitor {
    return new LagMonitor(config, () => connectAdmin(config, logger, '-lag'));
  }

  read(): Promise<KafkaStatus[]> {
    if (this.closed) return Promise.reject(new StreamerError('the lag monitor is closed'));
    if (this.last && Date.now() - this.last.at < this.opts.maxAgeMs) return Promise.resolve(this.last.value);
    this.inFlight ??= this.fetch().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async fetch(): Promise<KafkaStatus[]> {
    this.admin ??= this.connect();
    const admin = this.admin;
    try {
      const value = await withDeadline(
        admin.then((a) => readLags(a, this.config)),
        this.opts.timeoutMs,
        () => new UnreachableError(`Kafka at ${this.config.kafkaBrokers.join(',')} did not answer the lag read within ${this.opts.timeoutMs} ms`),
      );
      this.last = { at: Date.now(), value };
      return value;
    } catch (err) {
      if (this.admin === admin) this.admin = null;
      void admin.then((a) => a.disconnect()).catch(() => {});
      throw err;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.inFlight?.catch(() => {});
    const admin = this.admin;
    this.admin = null;
    await admin?.then((a) => a.disconnect()).catch(() => {});
  }
}

/** status's ClickHouse SQL: rows stored (every version), and the messages dead-lettered from a topic. */
export const CH_STATUS = {
  rows: (database: string, table: string) => `SELECT toString(count()) AS n FROM ${chIdent(database)}.${chIdent(table)}`,
  deadLetters: (database: string, topic: string) => `SELECT toString(uniqExact(topic, partition, offset)) AS n FROM ${chIdent(database)}.streamer_dead_letters WHERE topic = ${chLiteral(topic)}`,
};

async function clickhouseStatus(config: Config, logger: Logger): Promise<TableStatus['clickhouse'][]> {
  const database = config.clickhouseDatabase;
  // The user's default database: CLICKHOUSE_DATABASE itself may be missing, which we report.
  const ch = createClickHouse(config, logger, { database: null });
  try {
    await checkClickHouse(ch, config);
    const out: TableStatus['clickhouse'][] = [];
    const hasDead = await clickhouseTableExists(ch, database, 'streamer_dead_letters');
    for (const t of config.tables) {
      if (!(await clickhouseTableExists(ch, database, t.clickhouseTable))) {
        out.push({ database, rows: 0, deadLetters: 0, tableExists: false, note: `table ${database}.${t.clickhouseTable} does not exist — run "streamer migrate"`, error: null });
        continue;
      }
      const rows = Number((await (await ch.query({ query: CH_STATUS.rows(database, t.clickhouseTable), format: 'JSONEachRow' })).json<{ n: string }>())[0]?.n ?? 0);
      const deadLetters = hasDead
        ? Number(
            (await (await ch.query({ query: CH_STATUS.deadLetters(database, t.topic), format: 'JSONEachRow' })).json<{ n: string }>())[0]?.n ?? 0,
          )
        : 0;
      out.push({ database, rows, deadLetters, tableExists: true, note: null, error: null });
    }
    return out;
  } finally {
    await ch.close();
  }
}

const num = (v: number) => v.toLocaleString('en-US');

/** The report for a terminal: per table one block per store, the partitions as a table (a report without errors). */
export function formatStatus(r: StatusReport): string {
  const lines: string[] = [];
  for (const t of r.tables) {
    const k = t.kafka;
    const p = t.postgres;
    lines.push(`${t.table}`);
    lines.push(`  PostgreSQL  ${num(p.total ?? 0)} rows, ${num(p.pending ?? 0)} pending, ${num(p.failed ?? 0)} failed${p.note ? ` — ${p.note}` : ''}`);
    lines.push(`  Kafka       topic ${k.topic}, group ${k.group}: ${k.topicExists ? `lag ${num(k.totalLag)}` : 'topic does not exist yet (nothing published)'}`);
    if (k.partitions.length > 0) {
      const rows = [['partition', 'committed', 'high', 'lag'], ...k.partitions.map((x) => [String(x.partition), x.committed ?? '-', x.high, num(x.lag)])];
      const widths = (rows[0] as string[]).map((_, i) => Math.max(...rows.map((row) => (row[i] as string).length)));
      for (const row of rows) lines.push(`              ${row.map((cell, i) => cell.padStart(widths[i] as number)).join('  ')}`);
    }
    const c = t.clickhouse;
    lines.push(`  ClickHouse  ${t.clickhouseTable}: ${c.tableExists ? `${num(c.rows ?? 0)} rows stored, ${num(c.deadLetters ?? 0)} dead-lettered` : 'missing'}${c.note ? ` — ${c.note}` : ''}`);
  }
  return lines.join('\n');
}
