/**
 * The producer: PostgreSQL changes → Kafka, then marked published — for every configured table.
 *
 * A drain pass of a table repeats one transaction per batch until nothing is pending:
 *   BEGIN;
 *     claim flagged rows (flag mode), FOR UPDATE SKIP LOCKED, marking them sent in the same
 *       statement (after the first batch of a pass: as COPY, each message written from the row's
 *       bytes, starting after the highest key claimed before — ClaimCursor); then a fresh version
 *       for each;
 *     claim change-log rows (deletes, truncates; every change in log mode), FOR UPDATE SKIP LOCKED;
 *     for the change-log keys, read the rows as they are now: present → an upsert, gone → a delete,
 *       with the highest version claimed for the key (in log mode after the first batch of a pass:
 *       the claim, the delete of the claimed change-log rows and this read are one COPY —
 *       plans.copyClaimChanges);
 *     publish, wait for acks=all (at most PRODUCER_PUBLISH_TIMEOUT_MS);
 *     delete the change-log rows published (or, deleted by the claim, put back those of the
 *       messages Kafka refused); rows Kafka refused are pending again, recorded failed;
 *   COMMIT
 * If Kafka or PostgreSQL fails, the transaction rolls back and everything stays pending. If the
 * process dies after Kafka's ack but before COMMIT, the changes are published again later: the
 * topic is at-least-once, and the consumer keeps each (key, version) once.
 *
 * Wakes (NOTIFY with the table's id, start-up, the sweep timer, a listener reconnect, a
 * follow-up) that arrive during a pass coalesce into one more pass; there is never more than one
 * pass at a time in a process. A pass that published rows is followed by another
 * PRODUCER_FOLLOW_UP_MS later: of the transactions open together, at most one per table per 10 ms
 * notifies (0006), and one that did not may have committed just after this pass looked.
 *
 * Every sweep also checks each table's shape against the catalog: a table whose columns changed
 * since `streamer migrate` installed its capture is paused (its changes wait in PostgreSQL) with
 * one clear message, and resumes by itself once migrate has run for the new shape.
 */
import type pg from 'pg';
import { encodeFields, encodeTruncate, encodeValue, fieldPrefixes, type EncodedMessage } from '../tables/codec.js';
import type { Config } from '../config/config.js';
import { describeError, isRetriable, StreamerError, UnreachableError } from '../common/errors.js';
import { kafkaFailure } from '../kafka/kafka.js';
import type { Logger } from '../common/logger.js';
import { metrics, registerGauge } from '../ops/metrics.js';
import { backoffDelay, sleep, withDeadline } from '../common/retry.js';
import { FifoLock } from '../common/fifo-lock.js';
import { BufferPool, Lease } from '../common/bytes.js';
import { buildSpec, readCatalog } from '../tables/introspect.js';
import { mapColumn } from '../tables/pg-types.js';
import { capabilities } from '../tables/server.js';
import type { TableConfig, TableSpec } from '../tables/spec.js';
import { tableKey } from '../config/tables.js';
import { assertPgReachable, createPool, isPgConnectionError, pgFailure } from './db.js';
import { startListener, type Listener } from './listener.js';
import { shapeOf } from './pg-migrate.js';
import { PRODUCER_BEGIN, producerPlans, RECORDED_SHAPE, type PreparedStatement, type ProducerPlans } from './plans.js';
import { createPublisher, type Publisher } from './publisher.js';
import { copyOut } from './copy-out.js';
import { CopyRows, upsertValues, type ColumnWriter } from '../tables/copy-rows.js';

export interface BatchResult {
  claimed: number;
  published: number;
  failed: number;
  /** Its claims started after a resume point (ClaimCursor), not from the start. */
  resumed?: true;
}

/**
 * Where the claims of a drain's next batch start (drainTable): after the highest key of the
 * flagged rows (copyClaim's is_last) and after the highest change-log version the batches before
 * claimed, set as soon as a claim returns. (The first batch's rows do not set it: it runs alone,
 * and has committed before the next claims.) Without it, each claim read the pending index from
 * its start, past the rows of the batch in flight (SKIP LOCKED still reads and skips each one):
 * 2,000–5,000 rows per claim.
 * Rows the claims pass by — one committed late under a lower key, one another producer held and
 * then released — are claimed by the claim from the start that ends every drain, or by the next
 * pass.
 */
export interface ClaimCursor {
  after?: {
    /** Flag mode: the text of each key column of the highest key claimed. */
    keys?: string[];
    /** The highest change-log version claimed. */
    version?: string;
  };
}

export interface ProducerStats {
  published: number;
  failed: number;
  passes: number;
}

/** One table as the producer works on it: its spec, its SQL, and how to encode its rows. */
export interface TableSource {
  spec: TableSpec;
  /** `schema.table`: the name in streamer_failed_rows and streamer_tables. */
  name: string;
  plans: ProducerPlans;
  /** The columns as JSON member starts (`"id":`), in the order of the SQL's c0…cN. */
  prefixes: string[];
  /** The first batch's claim's result fields of the columns: c0…cN. */
  fields: string[];
  encoders: Array<(v: unknown) => string>;
  /** The columns as the backlog path (plans.copyClaim) writes them from their bytes, c0…cN. */
  writers: ColumnWriter[];
  /** Fields of a copyClaim row: c0…cN, key, k0…kN with several key columns, is_last. */
  copyFields: number;
  /** Fields of a copyClaimChanges row: c0…cN, k0…kN, then CHANGE_FIELDS. */
  changeFields: number;
  /** What streamer_tables must record for this source's SQL to be right (pg-migrate.ts shapeOf). */
  shape: { capture: string; columns: string };
}

/**
 * A batch found that "streamer migrate" recorded another shape for its table than the one its SQL
 * was made for: rolled back, and the producer reads the table's shape again before going on.
 */
export class ShapeChanged extends StreamerError {
  constructor(table: string) {
    super(`${table}: "streamer migrate" ran for a new shape of the table; the batch rolled back and the producer follows the new shape`, { retriable: true });
  }
}

/** A table, or a column the SQL names, gone (42P01, 42703): its shape changed under the producer. */
const isShapeError = (err: unknown): boolean => {
  if (err instanceof ShapeChanged) return true;
  const code = (err as { cause?: { code?: unknown } })?.cause?.code;
  return code === '42P01' || code === '42703';
};

export function tableSource(spec: TableSpec): TableSource {
  const caps = capabilities({ major: 99, minor: 0 }); // encoding does not depend on the server
  const mappings = spec.columns.map((c) => {
    const m = mapColumn(c, caps);
    if (!m.ok) throw new Error(`bug: ${c.name} was not refused by buildSpec`);
    return m.mapping;
  });
  const prefixes = fieldPrefixes(spec.columns.map((c) => c.name));
  return {
    spec,
    name: tableKey(spec),
    plans: producerPlans(spec),
    prefixes,
    fields: spec.columns.map((_, i) => `c${i}`),
    shape: shapeOf(spec),
    encoders: mappings.map((m) => m.encode),
    writers: mappings.map((m, i) => ({ prefix: Buffer.from(prefixes[i] as string, 'utf8'), wire: m.wire, encode: m.encode })),
    copyFields: spec.columns.length + 1 + (spec.keyColumns.length === 1 ? 0 : spec.keyColumns.length) + 1,
    changeFields: spec.columns.length + spec.keyColumns.length + CHANGE_FIELDS.length,
  };
}

/**
 * The sources of the configured tables, from the catalog; each must have its capture installed by
 * `streamer migrate` for the shape it has now, or this says what to run.
 */
export async function loadSources(db: Pick<pg.Pool, 'query'>, config: Config): Promise<TableSource[]> {
  const out: TableSource[] = [];
  for (const t of config.tables) {
    const spec = await currentSpec(db, t);
    await assertInstalled(db, spec);
    out.push(tableSource(spec));
  }
  return out;
}

async function currentSpec(db: Pick<pg.Pool, 'query'>, t: TableConfig): Promise<TableSpec> {
  return buildSpec(t, await readCatalog(db, t.schema, t.table));
}

async function recordedShape(db: Pick<pg.Pool, 'query'>, name: string): Promise<{ capture: string; columns: string } | null> {
  try {
    return (await db.query<{ capture: string; columns: string }>(RECORDED_SHAPE, [name])).rows[0] ?? null;
  } catch (err) {
    if ((err as { code?: string }).code === '42P01') return null; // streamer_tables: not migrated
    throw err;
  }
}

async function assertInstalled(db: Pick<pg.Pool, 'query'>, spec: TableSpec): Promise<void> {
  const name = tableKey(spec);
  const rec = await recordedShape(db, name);
  if (!rec) throw new StreamerError(`the capture of ${name} is not installed — run "streamer migrate"`);
  const shape = shapeOf(spec);
  if (rec.capture !== shape.capture || rec.columns !== shape.columns) {
    throw new StreamerError(`${name} changed since "streamer migrate" installed its capture (${describeShapeChange(rec.columns, shape.columns)}) — run "streamer migrate"`);
  }
}

/** "column c added; column d dropped" between two recorded shapes. */
export function describeShapeChange(before: string, after: string): string {
  const b = new Map(JSON.parse(before) as Array<[string, string]>);
  const a = new Map(JSON.parse(after) as Array<[string, string]>);
  const parts: string[] = [];
  for (const [n, t] of a) if (!b.has(n)) parts.push(`column ${n} ${t} added`);
  for (const [n, t] of b) {
    if (!a.has(n)) parts.push(`column ${n} dropped or renamed`);
    else if (a.get(n) !== t) parts.push(`column ${n} changed from ${t} to ${a.get(n)}`);
  }
  return parts.length > 0 ? parts.join('; ') : 'its capture mode changed';
}

const RECORD_FAILED = `
INSERT INTO streamer_failed_rows (table_name, key, error)
SELECT $1, * FROM unnest($2::text[], $3::text[])
ON CONFLICT (table_name, key) DO UPDATE
   SET error = EXCLUDED.error, failed_at = now(), attempts = streamer_failed_rows.attempts + 1`;

/**
 * A message of a batch and what it settles. It is handed to kafkajs as it is (kafkajs and our
 * encoder read key, value, timestamp and partition of a message, nothing else): one object per
 * message, not three (issue 14).
 */
class Pending implements EncodedMessage {
  /**
   * Flag mode: a claimed row (marked sent by its claim), pending again if Kafka refuses it — by the
   * text of its key columns: `key` itself for a one-column key, else these.
   */
  claimed: { keys?: string[] } | undefined = undefined;
  /**
   * The change-log rows this message settles that its claim deleted already (copyClaimChanges):
   * put back (restoreChanges) if Kafka refuses it — entry `entry` of `logged`. Each copy of a
   * truncate marker carries its row.
   */
  logged: ChangeClaim | undefined = undefined;
  entry = -1;

  constructor(
    /** The key's text (also the failed-rows record's); null for a truncate marker. */
    readonly key: string | null,
    readonly value: Buffer,
    /** When the batch claimed it (ms since the epoch, as text): the consumer measures claim → ClickHouse from it. */
    readonly timestamp: string,
    /** The change-log versions this message settles (deleteChanges, once Kafka has it). */
    readonly versions: readonly string[],
    /** A truncate marker's copy: its partition. */
    readonly partition?: number,
  ) {}
}

/**
 * The change-log rows of one copyClaimChanges claim (its COPY rows), grouped by the message that
 * settles them (an entry): linked through two arrays, not an object per message.
 */
class ChangeClaim {
  /** Per entry: its first row. Per row: the next row of its entry, -1 after the last. */
  private readonly first: Int32Array;
  private readonly last: Int32Array;
  private readonly next: Int32Array;
  private entries = 0;

  constructor(readonly rows: CopyRows) {
    this.first = new Int32Array(rows.count);
    this.last = new Int32Array(rows.count);
    this.next = new Int32Array(rows.count);
  }

  /** A new entry holding row `r`; its number. */
  open(r: number): number {
    const e = this.entries++;
    this.first[e] = this.last[e] = r;
    this.next[r] = -1;
    return e;
  }

  add(e: number, r: number): void {
    this.next[this.last[e] as number] = r;
    this.last[e] = r;
    this.next[r] = -1;
  }

  /** Entry `e`'s rows. */
  *rowsOf(e: number): Generator<number> {
    for (let r = this.first[e] as number; r >= 0; r = this.next[r] as number) yield r;
  }
}

/** Shared by the messages of claimed rows (read only): they settle no change-log row, and a one-column key is `key`. */
const NO_VERSIONS: readonly string[] = [];
const CLAIMED: { keys?: string[] } = {};
/**
 * The batches' COPY rows and message buffers, reused (bytes.ts BufferPool): a batch borrows them
 * and gives them back once committed — its messages, views of them, are then read by nobody (kafkajs
 * has answered the send). A batch that fails leaves its buffers to the GC: an abandoned send may
 * still be reading them.
 */
const BATCH_BUFFERS = new BufferPool(8, 4 * 1024 * 1024);

/** The statements each session (a pool's client: one per connection) has PREPAREd. */
const preparedBy = new WeakMap<pg.PoolClient, Set<string>>();

/**
 * PREPAREs what this session has not yet, in one round trip (a new connection — the pool closes
 * one idle for 30 s — costs one more). PREPARE is not transactional: if one of them fails, those
 * before it stay prepared, so the session forgets all of its statements (DEALLOCATE ALL) and
 * prepares them again next time.
 */
async function prepareOnce(client: pg.PoolClient, statements: readonly PreparedStatement[]): Promise<void> {
  let done = preparedBy.get(client);
  if (!done) preparedBy.set(client, (done = new Set()));
  const missing = statements.filter((st) => !done.has(st.name));
  if (missing.length === 0) return;
  try {
    await client.query(missing.map((st) => st.prepare).join(';\n'));
  } catch (err) {
    done.clear();
    await client.query('DEALLOCATE ALL').catch(() => {});
    throw err;
  }
  for (const st of missing) done.add(st.name);
}

/**
 * The order of a table's batches in flight together (drainTable): each claims after the one before
 * has claimed, and publishes after the one before has been acknowledged — so versions reach a
 * partition in increasing order, as with one batch at a time (the consumer's watermarks rely on it
 * for speed, not for correctness) — while one batch's publish overlaps the next one's claim and
 * the previous one's mark and commit.
 */
export interface BatchOrder {
  claims: FifoLock;
  publishes: FifoLock;
}

/**
 * One batch of one table: claim, publish, mark (and record refused rows), in one transaction.
 * Every failure comes out as a StreamerError that says which service failed and whether retrying
 * can help.
 */
export async function drainBatch(
  pool: pg.Pool,
  publisher: Publisher,
  config: Config,
  log: Logger,
  source: TableSource,
  batchSize = config.producerBatchSize,
  opts: {
    order?: BatchOrder;
    /** The first batch of a pass, alone: its claims in one round trip (plans.leadClaim). */
    lead?: boolean;
    /** The drain's: where the claims start (not the `lead` batch's: from the start), moved on by them. */
    cursor?: ClaimCursor;
  } = {},
): Promise<BatchResult> {
  const { order, lead = false, cursor } = opts;
  const after = lead ? undefined : cursor?.after;
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw pgFailure(config, err);
  }
  // pg-pool stops listening for a client's errors while it is checked out, and while the batch is
  // published no query is in flight to receive one: a PostgreSQL restart then (FATAL 57P01) was an
  // unhandled 'error' event that killed the process. Kept here, the error fails the next query
  // instead, and the batch rolls back like any other PostgreSQL failure.
  let connectionLost: Error | undefined;
  const onError = (err: Error) => {
    connectionLost ??= err;
  };
  client.on('error', onError);
  let released = false;
  const { spec, plans, name } = source;
  let publishTurn: Promise<() => void> | undefined;
  const lease = new Lease(BATCH_BUFFERS);
  try {
    const pending: Pending[] = [];
    let claimed = 0;
    let rows: Record<string, unknown>[] = [];
    let copied: CopyRows | undefined;
    let claimedChanges: CopyRows | undefined;
    let changes: Record<string, string | null>[];
    let rowVersions: string[];
    let recorded: { capture: string; columns: string } | undefined;
    if (lead) {
      // Alone in its pass: BEGIN, both claims and the shape in one round trip, their statements
      // prepared once per session.
      const claim = plans.leadClaim(batchSize, name);
      await prepareOnce(client, claim.statements);
      const releaseClaim = await order?.claims.acquire();
      try {
        const results = (await client.query(claim.text)) as unknown as pg.QueryResult[];
        const [claimedRows, claimedChanges, shape] = plans.claimRows ? results.slice(claim.before) : [undefined, ...results.slice(claim.before)];
        rows = claimedRows?.rows ?? [];
        rowVersions = rows.map((r) => r.v as string);
        changes = (claimedChanges as pg.QueryResult<Record<string, string | null>>).rows;
        if (changes.length > 0) moveCursor(cursor, { version: (changes[changes.length - 1] as Record<string, string | null>).version as string });
        recorded = (shape as pg.QueryResult<{ capture: string; columns: string }>).rows[0];
        publishTurn = order?.publishes.acquire();
      } finally {
        releaseClaim?.();
      }
    } else {
      await client.query(PRODUCER_BEGIN);
      // The row claim (and mark) runs beside the other batches' (SKIP LOCKED: they claim other
      // rows); their versions, the change-log claim and the publish turn are taken in order.
      // Its rows are read as bytes (COPY), and their messages written from them.
      if (plans.copyClaim) {
        const rowsRead = (copied = new CopyRows(source.copyFields, lease));
        await copyOut(client, plans.copyClaim(batchSize, name, after?.keys), (bytes, start, end, more) => rowsRead.add(bytes, start, end, more));
        const last = copiedLast(source, rowsRead);
        if (last) moveCursor(cursor, { keys: last });
      }
      const releaseClaim = await order?.claims.acquire();
      try {
        if (plans.copyClaimChanges) {
          // Log mode: the change-log claim and the rows of its keys in one COPY, then the shape.
          const rowsRead = (claimedChanges = new CopyRows(source.changeFields, lease));
          await copyOut(client, plans.copyClaimChanges(batchSize, name, after?.version), (bytes, start, end, more) => rowsRead.add(bytes, start, end, more));
          const highest = highestVersion(source, rowsRead);
          if (highest !== undefined) moveCursor(cursor, { version: highest });
          recorded = (await client.query<{ capture: string; columns: string }>(RECORDED_SHAPE, [name])).rows[0];
          rowVersions = [];
          changes = [];
        } else {
          const [versions, claimed, shape] = (await client.query(plans.afterClaim(copied?.count ?? 0, batchSize, name, after?.version))) as unknown as [pg.QueryResult<{ v: string | null }>, pg.QueryResult<Record<string, string | null>>, pg.QueryResult<{ capture: string; columns: string }>];
          rowVersions = versions.rows[0]?.v?.split(',') ?? [];
          changes = claimed.rows;
          if (changes.length > 0) moveCursor(cursor, { version: (changes[changes.length - 1] as Record<string, string | null>).version as string });
          recorded = shape.rows[0];
        }
        publishTurn = order?.publishes.acquire(); // in claim order
      } finally {
        releaseClaim?.();
      }
    }
    // Every message's timestamp (Kafka's message time): when its batch claimed it.
    const claimedAt = String(Date.now());
    claimed += rows.length;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] as Record<string, unknown>;
      const p = upsert(source, row, rowVersions[i] as string, claimedAt);
      p.claimed = spec.keyColumns.length === 1 ? CLAIMED : { keys: rowKeysOf(spec, row) };
      pending.push(p);
    }
    if (copied) {
      claimed += copied.count;
      copiedUpserts(source, copied, rowVersions, claimedAt, pending, lease);
    }
    claimed += changes.length;
    pending.push(...(await settleChanges(client, source, changes, publisher, claimedAt, lease)));
    if (claimedChanges) claimed += await copiedChanges(source, claimedChanges, publisher, claimedAt, pending, lease);
    if (pending.length === 0) {
      await client.query('COMMIT');
      lease.end();
      return after ? { claimed: 0, published: 0, failed: 0, resumed: true } : { claimed: 0, published: 0, failed: 0 };
    }
    // Read after the claims: a migrate that committed a new shape before any claimed row changed
    // is seen, and the batch is not published with the old columns (a new column's value would be
    // lost at a version higher than its backfill's).
    if (!recorded || recorded.capture !== source.shape.capture || recorded.columns !== source.shape.columns) throw new ShapeChanged(name);
    // The claimed rows stay locked while Kafka acknowledges: at most PRODUCER_PUBLISH_TIMEOUT_MS,
    // then the transaction rolls back and a new Kafka producer is made for the next attempt (a
    // hung broker held the locks ~5 minutes before issue 9: kafkajs's 9 attempts × 30 s).
    let rejected;
    const releasePublish = await publishTurn;
    try {
      rejected = await withDeadline(publisher.publish(spec.topic, pending), config.producerPublishTimeoutMs, () => {
        publisher.abandon();
        return new UnreachableError(
          `Kafka at ${config.kafkaBrokers.join(',')} did not acknowledge ${pending.length} messages within PRODUCER_PUBLISH_TIMEOUT_MS=${config.producerPublishTimeoutMs}: rolled back, the changes stay pending`,
        );
      });
    } catch (err) {
      throw kafkaFailure(config, err);
    } finally {
      releasePublish?.();
    }
    const refused = new Map(rejected.map((r) => [r.message, r.error]));
    const failed = pending.filter((p) => refused.has(p) && p.key !== null);
    const sent = refused.size === 0 ? pending : pending.filter((p) => !refused.has(p));
    // The claim marked its rows sent; those Kafka refused are pending again, and recorded failed below.
    const refusedRows = failed.flatMap((p) => (p.claimed ? [p.claimed.keys ?? [p.key as string]] : []));
    if (refusedRows.length > 0 && plans.unmarkRows) {
      await client.query(plans.unmarkRows, spec.keyColumns.map((_, i) => refusedRows.map((k) => k[i])));
    }
    // A change-log row is settled once every message carrying it is sent: each copy of a truncate
    // marker carries its version, and one copy refused keeps the row for the next batch.
    const kept = new Set<string>();
    for (const p of pending) if (refused.has(p)) for (const v of p.versions) kept.add(v);
    const versions: string[] = [];
    for (const p of sent) for (const v of p.versions) if (kept.size === 0 || !kept.has(v)) versions.push(v); // (flatMap: ~1 % of the sweep's CPU)
    if (versions.length > 0) await client.query(plans.deleteChanges, [versions]);
    // The change-log rows of refused messages that their claim deleted: back, pending (or failed) again.
    const restore = pending.filter((p) => p.logged && refused.has(p));
    if (restore.length > 0) await client.query(plans.restoreChanges, restoreParams(source, restore));
    if (failed.length > 0) {
      const errors = failed.map((f) => `Kafka refused the message (${f.value.length} bytes): ${refused.get(f)}`);
      await client.query(RECORD_FAILED, [name, failed.map((f) => f.key), errors]);
      for (const [i, f] of failed.entries()) log.error({ table: name, key: f.key, error: errors[i] }, 'row recorded as failed (see streamer_failed_rows); the rows after it go on');
    }
    await client.query('COMMIT');
    lease.end(); // committed, and kafkajs answered: nothing reads the batch's buffers now
    metrics.rowsPublished.inc({ table: name }, sent.length);
    metrics.rowsFailed.inc({ table: name }, failed.length);
    metrics.producerBatchRows.observe(pending.length);
    const result: BatchResult = { claimed, published: sent.length, failed: failed.length };
    if (after) result.resumed = true;
    return result;
  } catch (err) {
    // A dead connection cannot roll back; PostgreSQL rolls back when the session ends.
    if (!connectionLost && !isPgConnectionError(err)) await client.query('ROLLBACK').catch(() => {});
    // A broken connection is discarded (our listener stays on it: it may still emit); a healthy
    // one goes back to the pool without it (each Kafka failure left one behind before: Node's
    // MaxListenersExceededWarning after 10 failed batches).
    const broken = connectionLost ?? (isPgConnectionError(err) ? (err as Error) : undefined);
    if (!broken) client.off('error', onError);
    client.release(broken);
    released = true;
    throw err instanceof StreamerError ? err : pgFailure(config, err);
  } finally {
    // A batch that ended before its publish (nothing claimed, an error) lets the next one publish.
    void publishTurn?.then((release) => release());
    if (!released) {
      if (!connectionLost) client.off('error', onError);
      client.release(connectionLost);
    }
  }
}

/**
 * Drains one table until a claim finds fewer rows than a batch (`untilEmpty`: none). The first
 * batch runs alone, its claims in one round trip (plans.leadClaim); only once it came back full
 * do PRODUCER_CONCURRENCY batches run at once (BatchOrder). On the live path a wake finds a few
 * rows: a second batch beside the first would claim nothing (SKIP LOCKED) at the cost of a
 * transaction, and each round trip costs the producer and PostgreSQL CPU that delays the next
 * claim — at 1,000 single-row transactions/s commit → Kafka p50 went 2.5 → 2.0 ms with the first
 * batch alone, then 1.8 → 1.2 ms with its claims in one round trip (issue 14, bench/README.md
 * "2026-11-27 (later)"). Every worker stops after its batch once one stopped or failed; the
 * first failure is thrown when all have.
 */
export async function drainTable(
  pool: pg.Pool,
  publisher: Publisher,
  config: Config,
  log: Logger,
  source: TableSource,
  opts: { untilEmpty?: boolean; signal?: AbortSignal; onBatch?: (r: BatchResult) => void } = {},
): Promise<void> {
  const order: BatchOrder = { claims: new FifoLock(), publishes: new FifoLock() };
  const done = (r: BatchResult) => (opts.untilEmpty ? r.claimed === 0 : r.claimed < config.producerBatchSize);
  const cursor: ClaimCursor = {};
  const first = await drainBatch(pool, publisher, config, log, source, config.producerBatchSize, { order, lead: true, cursor });
  opts.onBatch?.(first);
  if (done(first) || opts.signal?.aborted) return;
  let stop = false;
  const worker = async () => {
    try {
      while (!stop && !opts.signal?.aborted) {
        const r = await drainBatch(pool, publisher, config, log, source, config.producerBatchSize, { order, cursor });
        opts.onBatch?.(r);
        if (!done(r)) continue;
        // Short of a batch after a resume point: once more from the start. Only a claim from the
        // start ends the drain, as it did before resume points.
        if (r.resumed) cursor.after = undefined;
        else stop = true;
      }
    } catch (err) {
      stop = true;
      throw err;
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: config.producerConcurrency }, worker));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** The cursor past the highest key of claimed rows (the is_last row), or the highest change-log version claimed. */
function moveCursor(cursor: ClaimCursor | undefined, past: NonNullable<ClaimCursor['after']>): void {
  if (cursor) cursor.after = { ...cursor.after, ...past };
}

/** The key columns' text of the copyClaim row that is_last marks. */
function copiedLast(source: TableSource, rows: CopyRows): string[] | undefined {
  for (let r = rows.count - 1; r >= 0; r--) if (rows.isTrue(r, source.copyFields - 1)) return copiedKeys(source, rows, r);
  return undefined;
}

/** The key columns' text of a copyClaim row: `key` for one column, else k0…kN. */
function copiedKeys(source: TableSource, rows: CopyRows, r: number): string[] {
  const n = source.spec.keyColumns.length;
  return rows.texts(r, source.spec.columns.length + (n === 1 ? 0 : 1), n);
}

/** copyClaim rows → their upsert messages (the same bytes upsert() makes of the same rows read as rows). */
function copiedUpserts(source: TableSource, rows: CopyRows, versions: readonly string[], timestamp: string, pending: Pending[], lease: Lease): void {
  const values = upsertValues(rows, source.writers, Array.from({ length: rows.count }, (_, r) => r), versions, lease);
  const one = source.spec.keyColumns.length === 1;
  for (let r = 0; r < rows.count; r++) {
    const p = new Pending(rows.text(r, source.spec.columns.length) as string, values[r] as Buffer, timestamp, NO_VERSIONS);
    p.claimed = one ? CLAIMED : { keys: copiedKeys(source, rows, r) };
    pending.push(p);
  }
}

/** The key columns' text of a claimed row (claimRows: `key` itself for a one-column key, else k0…kN). */
function rowKeysOf(spec: TableSpec, row: Record<string, unknown>): string[] {
  return spec.keyColumns.length === 1 ? [row.key as string] : spec.keyColumns.map((_, i) => row[`k${i}`] as string);
}

/** A row read from the table (c0…cN) → its upsert message. */
function upsert(source: TableSource, row: Record<string, unknown>, version: string, timestamp: string): Pending {
  const { encoders, fields } = source;
  const fragments = new Array<string>(encoders.length);
  for (let i = 0; i < encoders.length; i++) {
    const v = row[fields[i] as string];
    fragments[i] = v === null || v === undefined ? 'null' : (encoders[i] as (v: unknown) => string)(v);
  }
  return new Pending(row.key as string, encodeFields(source.prefixes, fragments, 'upsert', version), timestamp, NO_VERSIONS);
}

/**
 * Claimed change-log rows → messages: for each key, the row as it is now (an upsert) or its
 * absence (a delete), with the highest version claimed for that key; a truncate marker to every
 * partition.
 */
async function settleChanges(client: pg.PoolClient, source: TableSource, changes: Record<string, string | null>[], publisher: Publisher, timestamp: string, lease: Lease): Promise<Pending[]> {
  const { spec } = source;
  const out: Pending[] = [];
  const byKey = new Map<string, { keys: string[]; version: string; versions: string[] }>();
  for (const c of changes) {
    const version = c.version as string;
    if (c.op === 'T') {
      await truncateMarkers(spec, version, publisher, timestamp, version, out);
      continue;
    }
    const key = c.key as string;
    let entry = byKey.get(key);
    if (!entry) byKey.set(key, (entry = { keys: spec.keyColumns.map((_, i) => c[`k${i}`] as string), version, versions: [] }));
    else if (newerVersion(version, entry.version)) entry.version = version;
    entry.versions.push(version);
  }
  if (byKey.size === 0) return out;
  const entries = [...byKey.entries()];
  // The rows as they are now, read as bytes (copyReadRows: c0…cN, then the key columns' text).
  const columns = spec.columns.length;
  const width = spec.keyColumns.length;
  const rows = new CopyRows(columns + width, lease);
  await copyOut(client, source.plans.copyReadRows(entries.map(([, e]) => e.keys)), (bytes, start, end, more) => rows.add(bytes, start, end, more));
  const present = new Map<string, number>();
  for (let r = 0; r < rows.count; r++) present.set(width === 1 ? (rows.text(r, columns) as string) : rows.texts(r, columns, width).join('\0'), r);
  const picks = entries.map(([, e]) => present.get(width === 1 ? (e.keys[0] as string) : e.keys.join('\0')) ?? -1);
  const values = upsertValues(rows, source.writers, picks, entries.map(([, e]) => e.version), lease);
  for (const [i, [key, e]] of entries.entries()) {
    const value = values[i];
    out.push(new Pending(key, value ?? deleteValue(source, e.keys, e.version), timestamp, e.versions));
  }
  return out;
}

/**
 * A truncate marker at `version` to every partition of the topic. Each copy settles the log row
 * only with the others: all of them carry its version (`settles`), or its row (`logged`, entry `entry`).
 */
async function truncateMarkers(spec: TableSpec, version: string, publisher: Publisher, timestamp: string, settles: string | ChangeClaim, out: Pending[], entry = -1): Promise<void> {
  const versions = typeof settles === 'string' ? [settles] : NO_VERSIONS;
  for (const partition of await publisher.partitions(spec.topic)) {
    const p = new Pending(null, encodeTruncate(version), timestamp, versions, partition);
    if (typeof settles !== 'string') {
      p.logged = settles;
      p.entry = entry;
    }
    out.push(p);
  }
}

/** The delete message of a key (the text of each key column) that has no row. */
function deleteValue(source: TableSource, keys: readonly string[], version: string): Buffer {
  const { spec } = source;
  const fragments = spec.keyColumns.map((k, j) => {
    const idx = spec.columns.findIndex((c) => c.name === k);
    return (source.encoders[idx] as (v: unknown) => string)(keys[j]);
  });
  return encodeValue(spec.keyColumns, fragments, 'delete', version);
}

/** What a copyClaimChanges row holds after c0…cN and k0…kN (plans.copyClaimChanges). */
const CHANGE_FIELDS = ['key', 'version', 'op', 'logged'] as const;
const changeField = (source: TableSource, f: (typeof CHANGE_FIELDS)[number]) => source.spec.columns.length + source.spec.keyColumns.length + CHANGE_FIELDS.indexOf(f);
const OP_UPSERT = 85; // U: the key's row is there
const OP_TRUNCATE = 84; // T

/** The highest version a copyClaimChanges claim holds (undefined for none). */
function highestVersion(source: TableSource, rows: CopyRows): string | undefined {
  const field = changeField(source, 'version');
  if (rows.count === 0) return undefined;
  let highest = 0;
  for (let r = 1; r < rows.count; r++) if (newerVersionAt(rows, field, r, highest)) highest = r;
  return rows.text(highest, field) as string;
}

/**
 * copyClaimChanges rows → their messages, as settleChanges makes them of the same claim: per key,
 * its row as it is now (an upsert) or a delete, at the highest version claimed for it; a truncate
 * marker to every partition. The claim deleted the change-log rows: each message carries those it
 * settles (Pending.logged), to put back if Kafka refuses it. Returns how many change-log rows the
 * claim held (a configured key that is not unique can join a change to several rows: each counts,
 * which at worst makes a drain claim once more). The versions are compared and written as the
 * bytes of the claim (no text made of them), each key's from its change with the highest.
 */
async function copiedChanges(source: TableSource, rows: CopyRows, publisher: Publisher, timestamp: string, out: Pending[], lease: Lease): Promise<number> {
  const { spec } = source;
  const [keyAt, versionAt, opAt] = (['key', 'version', 'op'] as const).map((f) => changeField(source, f)) as [number, number, number];
  const width = spec.keyColumns.length;
  const claim = new ChangeClaim(rows);
  const byKey = new Map<string, number>(); // key → its entry
  const keys: string[] = []; // per entry (the keys' first, opened in this order): its key
  const best = new Int32Array(rows.count); // per entry: its change with the highest version (every change of a key reads the key's row)
  const truncates: number[] = []; // their rows
  for (let r = 0; r < rows.count; r++) {
    const op = rows.bytes[rows.start(r, opAt)];
    if (op === OP_TRUNCATE) {
      truncates.push(r);
      continue;
    }
    const key = rows.text(r, keyAt) as string;
    const e = byKey.get(key);
    if (e === undefined) {
      const opened = claim.open(r);
      byKey.set(key, opened);
      keys[opened] = key;
      best[opened] = r;
    } else {
      if (newerVersionAt(rows, versionAt, r, best[e] as number)) best[e] = r;
      claim.add(e, r);
    }
  }
  const entries = keys.length;
  // Truncate markers first, as settleChanges has them (their entries after the keys').
  truncates.sort((a, b) => (a === b ? 0 : newerVersionAt(rows, versionAt, a, b) ? 1 : -1));
  for (const r of truncates) await truncateMarkers(spec, rows.text(r, versionAt) as string, publisher, timestamp, claim, out, claim.open(r));
  // The row if it is there (an upsert), else -1 (a delete).
  const picks = new Int32Array(entries);
  for (let e = 0; e < entries; e++) picks[e] = rows.bytes[rows.start(best[e] as number, opAt)] === OP_UPSERT ? (best[e] as number) : -1;
  const values = upsertValues(rows, source.writers, picks, versionAt, lease);
  for (let e = 0; e < entries; e++) {
    const r = best[e] as number;
    const value = values[e] ?? deleteValue(source, rows.texts(r, spec.columns.length, width), rows.text(r, versionAt) as string);
    const p = new Pending(keys[e] as string, value, timestamp, NO_VERSIONS);
    p.logged = claim;
    p.entry = e;
    out.push(p);
  }
  return rows.count;
}

/** restoreChanges' parameters for the change-log rows of these messages (a truncate marker's copies carry the same row: once). */
function restoreParams(source: TableSource, messages: readonly Pending[]): unknown[] {
  const { spec } = source;
  const [versionAt, loggedAt] = [changeField(source, 'version'), changeField(source, 'logged')];
  const seen = new Set<string>();
  const versions: string[] = [];
  const ops: string[] = [];
  const keys: Array<Array<string | null>> = spec.keyColumns.map(() => []);
  for (const { logged, entry } of messages) {
    if (!logged) continue;
    const from = logged.rows;
    for (const r of logged.rowsOf(entry)) {
      const v = from.text(r, versionAt) as string;
      if (seen.has(v)) continue;
      seen.add(v);
      versions.push(v);
      ops.push(from.text(r, loggedAt) as string);
      for (let j = 0; j < keys.length; j++) (keys[j] as Array<string | null>).push(from.text(r, spec.columns.length + j));
    }
  }
  return [versions, ops, ...keys];
}

/** Row `a`'s version > row `b`'s, both read in place from field `field` (decimal digits without leading zeros). */
function newerVersionAt(rows: CopyRows, field: number, a: number, b: number): boolean {
  const as = rows.start(a, field);
  const bs = rows.start(b, field);
  const n = rows.end(a, field) - as;
  const m = rows.end(b, field) - bs;
  if (n !== m) return n > m;
  const d = rows.bytes;
  for (let i = 0; i < n; i++) {
    const x = d[as + i] as number;
    const y = d[bs + i] as number;
    if (x !== y) return x > y;
  }
  return false;
}

/** `a` > `b`, both versions as decimal text without leading zeros (a BigInt of each was part of the change-log sweep's cost). */
function newerVersion(a: string, b: string): boolean {
  return a.length !== b.length ? a.length > b.length : a > b;
}

/** Changes not yet published, per table. */
async function pendingByTable(pool: Pick<pg.Pool, 'query'>, sources: readonly TableSource[]): Promise<Array<{ labels: { table: string }; value: number }>> {
  const out = [];
  for (const s of sources) out.push({ labels: { table: s.name }, value: Number((await pool.query<{ n: string }>(s.plans.countPending, [s.name])).rows[0]?.n ?? 0) });
  return out;
}

export async function countPending(pool: Pick<pg.Pool, 'query'>, sources: readonly TableSource[]): Promise<number> {
  return (await pendingByTable(pool, sources)).reduce((n, t) => n + t.value, 0);
}

export interface RunningProducer {
  stop(): Promise<void>;
  /** Resolves when the producer has stopped; rejects with an error retrying cannot cure. */
  done: Promise<void>;
  readonly stats: ProducerStats;
  readonly ready: boolean;
}

/**
 * `streamer producer`: listens, drains every table on its wakes, retries with capped backoff
 * while a service is down, and stops cleanly (the batch in flight finishes or rolls back).
 */
export async function startProducer(config: Config, logger: Logger): Promise<RunningProducer> {
  const log = logger.child({ component: 'producer' });
  const pool = createPool(config, logger, 'streamer-producer');
  const publisher = createPublisher(config, logger);
  let listener: Listener | undefined;
  let sources: TableSource[];
  try {
    await assertPgReachable(pool, config);
    sources = await loadSources(pool, config).catch((err: unknown) => {
      throw err instanceof StreamerError ? err : pgFailure(config, err);
    });
    await publisher.connect();
  } catch (err) {
    await Promise.all([pool.end().catch(() => {}), publisher.close()]);
    throw err;
  }

  const stats: ProducerStats = { published: 0, failed: 0, passes: 0 };
  const abort = new AbortController();
  let failure: unknown = null; // an error retrying cannot cure: the producer stops with it
  const wanted = new Set<number>(); // tables a wake asked for that no pass has served yet
  const paused = new Map<number, string>(); // tables whose shape changed: why
  let kick: (() => void) | undefined; // wakes the idle loop
  let followUp: NodeJS.Timeout | undefined;
  const byId = new Map(sources.map((s, i) => [s.spec.id, i]));

  const wake = (reason: string, table?: string) => {
    if (abort.signal.aborted) return;
    log.trace({ reason, table }, 'wake');
    const i = table === undefined ? undefined : byId.get(table);
    if (i === undefined) for (let j = 0; j < sources.length; j++) wanted.add(j);
    else wanted.add(i);
    kick?.();
  };

  /** Every sweep: a table whose columns changed since migrate is paused, and resumed after it. */
  const checkShapes = async () => {
    for (const [i, s] of sources.entries()) {
      try {
        const now = await currentSpec(pool, s.spec);
        const was = shapeOf(s.spec);
        const is = shapeOf(now);
        const rec = await recordedShape(pool, s.name);
        const recorded = rec !== null && rec.capture === is.capture && rec.columns === is.columns;
        if (is.capture === was.capture && is.columns === was.columns && recorded) {
          if (paused.delete(i)) log.info({ table: s.name }, 'table resumed');
          continue;
        }
        if (recorded) {
          sources[i] = tableSource(now);
          paused.delete(i);
          log.info({ table: s.name, change: describeShapeChange(was.columns, is.columns) }, 'the table changed and "streamer migrate" has run for its new shape: following it');
          wanted.add(i);
          continue;
        }
        const why = `${s.name} changed since "streamer migrate" installed its capture (${describeShapeChange(rec?.columns ?? was.columns, is.columns)}): its changes wait in PostgreSQL — run "streamer migrate"`;
        if (paused.get(i) !== why) log.error({ table: s.name }, why);
        paused.set(i, why);
      } catch (err) {
        const why = `${s.name} cannot be read: ${describeError(err)}`;
        if (paused.get(i) !== why) log.error({ table: s.name }, why);
        paused.set(i, why);
      }
    }
  };

  // The loop: wait for a wake, drain every wanted table, repeat. On failure, back off (the backoff
  // is interrupted by stop, not by wakes: a wake during an outage changes nothing).
  const loop = async () => {
    let failures = 0;
    while (!abort.signal.aborted) {
      if (wanted.size === 0) {
        await new Promise<void>((resolve) => {
          const onAbort = () => resolve();
          kick = () => {
            abort.signal.removeEventListener('abort', onAbort);
            resolve();
          };
          abort.signal.addEventListener('abort', onAbort, { once: true });
        });
        kick = undefined;
        continue;
      }
      const tables = [...wanted].filter((i) => !paused.has(i));
      wanted.clear();
      try {
        const started = Date.now();
        let published = 0;
        for (const i of tables) {
          if (abort.signal.aborted) break;
          await drainTable(pool, publisher, config, log, sources[i] as TableSource, {
            signal: abort.signal,
            onBatch: (r) => {
              published += r.published;
              stats.published += r.published;
              stats.failed += r.failed;
            },
          });
        }
        stats.passes++;
        if (published > 0 && !abort.signal.aborted) {
          // PRODUCER_FOLLOW_UP_MS after the LAST pass that published: under load the next
          // notification comes first anyway; the follow-up matters at the end of a burst. Not once
          // stop() has begun (it clears the timer, and a pass finishing later must not re-arm it).
          clearTimeout(followUp);
          followUp = setTimeout(() => {
            followUp = undefined;
            for (const i of tables) wanted.add(i);
            wake('follow-up', (sources[tables[0] as number] as TableSource).spec.id);
          }, config.producerFollowUpMs);
        }
        if (failures > 0) log.info({ afterFailures: failures }, 'producer recovered');
        failures = 0;
        if (published > 0) log.debug({ published, ms: Date.now() - started }, 'drained');
      } catch (err) {
        if (isShapeError(err)) {
          // Follow a new shape, or pause the table that changed; the others go on at once.
          const specs = sources.map((s) => s.spec);
          const pausedBefore = paused.size;
          await checkShapes();
          for (const i of tables) wanted.add(i);
          if (sources.some((s, i) => s.spec !== specs[i]) || paused.size !== pausedBefore) continue;
        }
        if (!isRetriable(err)) {
          log.error({ err: describeError(err) }, 'publishing failed, and retrying cannot help: the producer stops (the changes stay pending)');
          failure = err;
          return;
        }
        failures++;
        for (const i of tables) wanted.add(i); // still pending: try again after the backoff
        const delayMs = backoffDelay(failures, config.retryMaxDelayMs);
        log.warn({ err: describeError(err), attempt: failures, nextRetryMs: delayMs }, `publishing failed, changes stay pending; retrying in ${delayMs} ms`);
        await sleep(delayMs, abort.signal);
      }
    }
  };

  try {
    listener = await startListener(config, logger, (reason, table) => wake(reason, table));
  } catch (err) {
    await Promise.all([pool.end().catch(() => {}), publisher.close()]);
    throw err;
  }
  const timer = setInterval(() => {
    void checkShapes().then(() => wake('sweep-timer'));
  }, config.sweepIntervalMs);
  for (const { name } of sources) for (const c of [metrics.rowsPublished, metrics.rowsFailed]) c.inc({ table: name }, 0);
  registerGauge('streamer_pending_rows', 'Changes not yet in Kafka, per table (read at scrape time)', () => pendingByTable(pool, sources), ['table']);
  registerGauge('streamer_failed_rows', 'Rows recorded in streamer_failed_rows (read at scrape time)', async () =>
    Number((await pool.query<{ n: string }>('SELECT count(*)::bigint AS n FROM streamer_failed_rows')).rows[0]?.n ?? 0),
  );
  wake('start-up');
  const running = loop();
  log.info({ tables: sources.map((s) => ({ table: s.name, topic: s.spec.topic, capture: s.spec.capture.kind })), batchSize: config.producerBatchSize, sweepIntervalMs: config.sweepIntervalMs }, 'producer started');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      clearInterval(timer);
      clearTimeout(followUp);
      abort.abort();
      await running; // the batch in flight commits or rolls back
      await listener?.close();
      await publisher.close();
      await pool.end().catch(() => {});
      log.info({ published: stats.published, failed: stats.failed }, 'producer stopped');
    })());

  // The loop ends when stop() is called — or on an error retrying cannot cure, which closes
  // everything and rejects `done` with it.
  const done = running.then(async () => {
    await stop();
    if (failure !== null) throw failure;
  });
  done.catch(() => {}); // observed by the caller; this only keeps Node from calling it unhandled meanwhile
  return {
    stop,
    done,
    stats,
    get ready() {
      return listener?.connected ?? false;
    },
  };
}

export interface SweepResult {
  published: number;
  failed: number;
  ms: number;
}

/**
 * `streamer producer --sweep`: drains everything pending once, every table, and returns. Fails
 * (throws) on the first error instead of retrying: the operator is watching.
 */
export async function sweepOnce(config: Config, logger: Logger, onProgress?: (done: number, total: number) => void): Promise<SweepResult> {
  const log = logger.child({ component: 'sweep' });
  const pool = createPool(config, logger, 'streamer-sweep');
  const publisher = createPublisher(config, logger);
  const started = Date.now();
  let published = 0;
  let failed = 0;
  try {
    await assertPgReachable(pool, config);
    const sources = await loadSources(pool, config).catch((err: unknown) => {
      throw err instanceof StreamerError ? err : pgFailure(config, err);
    });
    await publisher.connect();
    const total = await countPending(pool, sources);
    onProgress?.(0, total);
    // Larger transactions than the long-running producer's, unless PRODUCER_BATCH_SIZE says (config.ts).
    const sweepConfig: Config = { ...config, producerBatchSize: config.producerSweepBatchSize };
    for (const source of sources) {
      // Unlike the long-running loop, stop only when a claim finds nothing: rows locked by a
      // concurrent producer are skipped here and published by that producer.
      await drainTable(pool, publisher, sweepConfig, log, source, {
        untilEmpty: true,
        onBatch: (r) => {
          published += r.published;
          failed += r.failed;
          onProgress?.(published + failed, Math.max(total, published + failed));
        },
      });
    }
  } finally {
    await publisher.close();
    await pool.end().catch(() => {});
  }
  return { published, failed, ms: Date.now() - started };
}
