/**
 * `status`: where the pipeline stands, from the three stores themselves — rows waiting in
 * PostgreSQL, the consumer group's lag per Kafka partition, rows in ClickHouse. Read-only.
 *
 * A missing Kafka topic (nothing published yet) is a state, not an error: no partitions, lag 0.
 * A missing ClickHouse table is reported too (`tableExists: false`, rows 0 and a note saying what
 * to run). A store that cannot be read (unreachable, not migrated) puts its message in that
 * section's `error`, its figures null, and `ok` false: the other sections still show, and
 * `status --json` always prints one JSON object (issue 15), exiting 1 when `ok` is false.
 */
import { checkClickHouse, createClickHouse, clickhouseTableExists } from './clickhouse.js';
import type { Config } from './config.js';
import { pgAddress } from './config.js';
import { assertPgReachable, createPool } from './db.js';
import { describeError, StreamerError, UnreachableError } from './errors.js';
import { createKafka, kafkaUnreachableMessage } from './kafka.js';
import type { Logger } from './logger.js';
import { COUNT_FAILED, COUNT_PENDING } from './sql.js';

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
  /** Rows not yet published (not sent, not recorded failed). */
  pending: number;
  /** Rows Kafka refused, recorded in streamer_failed_rows. */
  failed: number;
  /** All rows of user_login. */
  total: number;
}

export interface StatusReport {
  /** False when a section has an error. */
  ok: boolean;
  postgres: Readable<PostgresStatus>;
  kafka: KafkaStatus & { error: string | null };
  clickhouse: Readable<ClickHouseStatus>;
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
  /** Rows of user_login, duplicates not yet merged included (count() without FINAL). */
  rows: number;
  /** Messages the consumer dead-lettered (streamer_dead_letters). */
  deadLetters: number;
  tableExists: boolean;
  /** Set when something needs the user's attention (the table is missing). */
  note: string | null;
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
 * All three sections, each read on its own: one failing does not hide the others (and its client
 * is closed before this returns — before issue 15 a rejected Promise.all returned while kafkajs's
 * admin still retried, keeping the process alive).
 */
export async function status(config: Config, logger: Logger): Promise<StatusReport> {
  const [postgres, kafka, clickhouse] = await Promise.allSettled([postgresStatus(config, logger), kafkaStatus(config, logger), clickhouseStatus(config, logger)]);
  const error = (r: PromiseSettledResult<unknown>) => (r.status === 'rejected' ? describeError(r.reason) : null);
  const report: StatusReport = {
    ok: postgres.status === 'fulfilled' && kafka.status === 'fulfilled' && clickhouse.status === 'fulfilled',
    postgres: postgres.status === 'fulfilled' ? { ...postgres.value, error: null } : { pending: null, failed: null, total: null, error: error(postgres) },
    kafka:
      kafka.status === 'fulfilled'
        ? { ...kafka.value, error: null }
        : { topic: config.kafkaTopic, group: config.kafkaGroupId, topicExists: false, partitions: [], totalLag: 0, error: error(kafka) },
    clickhouse:
      clickhouse.status === 'fulfilled'
        ? { ...clickhouse.value, error: null }
        : { database: config.clickhouseDatabase, rows: null, deadLetters: null, tableExists: false, note: null, error: error(clickhouse) },
  };
  return report;
}

/** The first error of a report, as the error it was (for the one-line human form). */
export function firstError(r: StatusReport): string | null {
  return r.postgres.error ?? r.kafka.error ?? r.clickhouse.error;
}

async function postgresStatus(config: Config, logger: Logger): Promise<PostgresStatus> {
  const pool = createPool(config, logger, 'streamer-status', {});
  try {
    await assertPgReachable(pool, config);
    const one = async (sql: string) => Number((await pool.query<{ n: string }>(sql)).rows[0]?.n ?? 0);
    try {
      const [pending, failed, total] = await Promise.all([one(COUNT_PENDING), one(COUNT_FAILED), one('SELECT count(*)::bigint AS n FROM user_login')]);
      return { pending, failed, total };
    } catch (err) {
      if ((err as { code?: string }).code === '42P01') {
        throw new StreamerError(`PostgreSQL at ${pgAddress(config.databaseUrl)} has no table user_login or streamer_failed_rows — run "streamer migrate"`, { cause: err });
      }
      throw err;
    }
  } finally {
    await pool.end();
  }
}

export async function kafkaStatus(config: Config, logger: Logger): Promise<KafkaStatus> {
  const topic = config.kafkaTopic;
  const group = config.kafkaGroupId;
  // One retry, soon: a command, not a service; an unreachable Kafka is reported in seconds.
  const admin = createKafka(config, logger, '-status').admin({ retry: { retries: 1, initialRetryTime: 200, maxRetryTime: 1000 } });
  try {
    await admin.connect();
  } catch (err) {
    await admin.disconnect().catch(() => {});
    throw new UnreachableError(kafkaUnreachableMessage(config, err), err);
  }
  try {
    if (!(await admin.listTopics()).includes(topic)) return { topic, group, topicExists: false, partitions: [], totalLag: 0 };
    const watermarks = await admin.fetchTopicOffsets(topic);
    const committed = (await admin.fetchOffsets({ groupId: group, topics: [topic] })).find((t) => t.topic === topic)?.partitions ?? [];
    return { topic, group, topicExists: true, ...partitionLags(watermarks, committed) };
  } finally {
    await admin.disconnect();
  }
}

async function clickhouseStatus(config: Config, logger: Logger): Promise<ClickHouseStatus> {
  const database = config.clickhouseDatabase;
  // The user's default database: CLICKHOUSE_DATABASE itself may be missing, which we report.
  const ch = createClickHouse(config, logger, { database: null });
  try {
    await checkClickHouse(ch, config);
    if (!(await clickhouseTableExists(ch, config))) {
      return { database, rows: 0, deadLetters: 0, tableExists: false, note: `table ${database}.user_login does not exist — run "streamer migrate"` };
    }
    // Interpolated: config.ts allows [A-Za-z_][A-Za-z0-9_]* only for the database name.
    const rs = await ch.query({ query: `SELECT toString(count()) AS n FROM ${database}.user_login`, format: 'JSONEachRow' });
    const rows = Number((await rs.json<{ n: string }>())[0]?.n ?? 0);
    const dl = await ch.query({ query: `SELECT toString(uniqExact(topic, partition, offset)) AS n FROM ${database}.streamer_dead_letters`, format: 'JSONEachRow' });
    const deadLetters = Number((await dl.json<{ n: string }>())[0]?.n ?? 0);
    return { database, rows, deadLetters, tableExists: true, note: null };
  } finally {
    await ch.close();
  }
}

const num = (v: number) => v.toLocaleString('en-US');

/** The report for a terminal: one block per store, the partitions as a table (a report without errors). */
export function formatStatus(r: StatusReport): string {
  const k = r.kafka;
  const lines = [
    `PostgreSQL  user_login: ${num(r.postgres.total ?? 0)} rows, ${num(r.postgres.pending ?? 0)} pending, ${num(r.postgres.failed ?? 0)} failed`,
    `Kafka       topic ${k.topic}, group ${k.group}: ${k.topicExists ? `lag ${num(k.totalLag)}` : 'topic does not exist yet (nothing published)'}`,
  ];
  if (k.partitions.length > 0) {
    const rows = [['partition', 'committed', 'high', 'lag'], ...k.partitions.map((p) => [String(p.partition), p.committed ?? '-', p.high, num(p.lag)])];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
    for (const row of rows) lines.push(`            ${row.map((cell, i) => cell.padStart(widths[i]!)).join('  ')}`);
  }
  const c = r.clickhouse;
  lines.push(`ClickHouse  ${c.database}.user_login: ${c.tableExists ? `${num(c.rows ?? 0)} rows, ${num(c.deadLetters ?? 0)} dead-lettered` : 'missing'}${c.note ? ` — ${c.note}` : ''}`);
  return lines.join('\n');
}
