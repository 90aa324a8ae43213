/**
 * The producer: PostgreSQL pending rows → Kafka, then marked sent.
 *
 * A drain pass repeats one transaction per batch until nothing is pending:
 *   BEGIN; CLAIM_BATCH (FOR UPDATE SKIP LOCKED) → publish, wait for acks=all → MARK_SENT; COMMIT
 * One round trip claims a batch and one marks it; no per-row queries. If Kafka fails, the
 * transaction rolls back and the rows stay pending. If the process dies after Kafka's ack but
 * before COMMIT, the rows are published again later: the topic is at-least-once and the consumer
 * drops what ClickHouse already holds.
 *
 * Wakes (NOTIFY, start-up, the sweep timer, a listener reconnect, a follow-up) that arrive during
 * a pass coalesce into one more pass; there is never more than one pass at a time in a process.
 * A pass that published rows is followed by another PRODUCER_FOLLOW_UP_MS later: the insert trigger
 * notifies for one transaction per 10 ms (sql/postgres/0005), and a transaction that did not
 * notify may have committed just after this pass looked.
 */
import type pg from 'pg';
import { encodeRow, type EncodedMessage, type PendingRow } from './codec.js';
import type { Config } from './config.js';
import { assertPgReachable, createPool, isPgConnectionError, pgFailure } from './db.js';
import { describeError, isRetriable, StreamerError, UnreachableError } from './errors.js';
import { kafkaFailure } from './kafka.js';
import { startListener, type Listener } from './listener.js';
import type { Logger } from './logger.js';
import { metrics, registerGauge } from './metrics.js';
import { createPublisher, type Publisher } from './publisher.js';
import { backoffDelay, sleep } from './retry.js';
import { CLAIM_BATCH, COUNT_FAILED, COUNT_PENDING, MARK_SENT, RECORD_FAILED } from './sql.js';

export interface BatchResult {
  claimed: number;
  published: number;
  failed: number;
}

export interface ProducerStats {
  published: number;
  failed: number;
  passes: number;
}

/**
 * `work`, or a retriable error once `ms` have passed without it settling (its result is then
 * ignored); `onTimeout` runs first.
 */
async function withDeadline<T>(work: Promise<T>, ms: number, onTimeout: () => StreamerError): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  work.catch(() => {}); // settles after the deadline: already reported
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One batch: claim, publish, mark (and record refused rows), in one transaction. Every failure
 * comes out as a StreamerError that says which service failed and whether retrying can help.
 */
export async function drainBatch(pool: pg.Pool, publisher: Publisher, config: Config, log: Logger, batchSize = config.producerBatchSize): Promise<BatchResult> {
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
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<PendingRow>(CLAIM_BATCH, [batchSize]);
    const claimedAt = Date.now();
    if (rows.length === 0) {
      await client.query('COMMIT');
      return { claimed: 0, published: 0, failed: 0 };
    }
    const messages: EncodedMessage[] = [];
    const failed: Array<{ id: string; error: string }> = [];
    for (const row of rows) {
      try {
        messages.push(encodeRow(row));
      } catch (err) {
        failed.push({ id: String(row.id), error: `cannot encode the row: ${describeError(err)}` });
      }
    }
    // The claimed rows stay locked while Kafka acknowledges: at most PRODUCER_PUBLISH_TIMEOUT_MS,
    // then the transaction rolls back and a new Kafka producer is made for the next attempt (a
    // hung broker held the locks ~5 minutes before issue 9: kafkajs's 9 attempts × 30 s).
    let rejected;
    try {
      rejected = await withDeadline(publisher.publish(messages, claimedAt), config.producerPublishTimeoutMs, () => {
        publisher.abandon();
        return new UnreachableError(
          `Kafka at ${config.kafkaBrokers.join(',')} did not acknowledge ${messages.length} rows within PRODUCER_PUBLISH_TIMEOUT_MS=${config.producerPublishTimeoutMs}: rolled back, the rows stay pending`,
        );
      });
    } catch (err) {
      throw kafkaFailure(config, err);
    }
    const rejectedKeys = new Set(rejected.map((r) => r.message.key));
    for (const r of rejected) failed.push({ id: r.message.key, error: r.error });
    const sentIds = messages.filter((m) => !rejectedKeys.has(m.key)).map((m) => m.key);
    if (sentIds.length > 0) await client.query(MARK_SENT, [sentIds]);
    if (failed.length > 0) {
      await client.query(RECORD_FAILED, [failed.map((f) => f.id), failed.map((f) => f.error)]);
      for (const f of failed) log.error({ id: f.id, error: f.error }, 'row recorded as failed (see streamer_failed_rows); the rows after it go on');
    }
    await client.query('COMMIT');
    metrics.rowsPublished.inc(sentIds.length);
    metrics.rowsFailed.inc(failed.length);
    metrics.producerBatchRows.observe(rows.length);
    return { claimed: rows.length, published: sentIds.length, failed: failed.length };
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
    if (!released) {
      if (!connectionLost) client.off('error', onError);
      client.release(connectionLost);
    }
  }
}

export async function countPending(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(COUNT_PENDING);
  return Number(rows[0]?.n ?? 0);
}

export interface RunningProducer {
  stop(): Promise<void>;
  /** Resolves when the producer has stopped. */
  done: Promise<void>;
  readonly stats: ProducerStats;
  readonly ready: boolean;
}

/**
 * `streamer producer`: listens, drains on every wake, retries with capped backoff while a
 * service is down, and stops cleanly (the batch in flight finishes or rolls back).
 */
export async function startProducer(config: Config, logger: Logger): Promise<RunningProducer> {
  const log = logger.child({ component: 'producer' });
  const pool = createPool(config, logger, 'streamer-producer');
  const publisher = createPublisher(config, logger);
  let listener: Listener | undefined;
  try {
    await assertPgReachable(pool, config);
    await publisher.connect();
  } catch (err) {
    await Promise.all([pool.end().catch(() => {}), publisher.close()]);
    throw err;
  }

  const stats: ProducerStats = { published: 0, failed: 0, passes: 0 };
  const abort = new AbortController();
  let failure: unknown = null; // an error retrying cannot cure: the producer stops with it
  let wanted = false; // a wake arrived that no pass has served yet
  let running: Promise<void> | undefined;
  let kick: (() => void) | undefined; // wakes the idle loop
  let followUp: NodeJS.Timeout | undefined;

  const wake = (reason: string) => {
    if (abort.signal.aborted) return;
    log.trace({ reason }, 'wake');
    wanted = true;
    kick?.();
  };

  // The loop: wait for a wake, drain everything pending, repeat. On failure, back off (the
  // backoff is interrupted by stop, not by wakes: a wake during an outage changes nothing).
  const loop = async () => {
    let failures = 0;
    while (!abort.signal.aborted) {
      if (!wanted) {
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
      wanted = false;
      try {
        const started = Date.now();
        let published = 0;
        for (;;) {
          if (abort.signal.aborted) break;
          const r = await drainBatch(pool, publisher, config, log);
          published += r.published;
          stats.published += r.published;
          stats.failed += r.failed;
          if (r.claimed < config.producerBatchSize) break;
        }
        stats.passes++;
        if (published > 0 && !abort.signal.aborted) {
          // PRODUCER_FOLLOW_UP_MS after the LAST pass that published: under load the next
          // notification comes first anyway; the follow-up matters at the end of a burst. Not once
          // stop() has begun (it clears the timer, and a pass finishing later must not re-arm it).
          clearTimeout(followUp);
          followUp = setTimeout(() => {
            followUp = undefined;
            wake('follow-up');
          }, config.producerFollowUpMs);
        }
        if (failures > 0) log.info({ afterFailures: failures }, 'producer recovered');
        failures = 0;
        if (published > 0) log.debug({ published, ms: Date.now() - started }, 'drained');
      } catch (err) {
        if (!isRetriable(err)) {
          log.error({ err: describeError(err) }, 'publishing failed, and retrying cannot help: the producer stops (the rows stay pending)');
          failure = err;
          return;
        }
        failures++;
        wanted = true; // the rows are still pending: try again after the backoff
        const delayMs = backoffDelay(failures, config.retryMaxDelayMs);
        log.warn({ err: describeError(err), attempt: failures, nextRetryMs: delayMs }, `publishing failed, rows stay pending; retrying in ${delayMs} ms`);
        await sleep(delayMs, abort.signal);
      }
    }
  };

  try {
    listener = await startListener(config, logger, (reason) => wake(reason));
  } catch (err) {
    await Promise.all([pool.end().catch(() => {}), publisher.close()]);
    throw err;
  }
  const timer = setInterval(() => wake('sweep-timer'), config.sweepIntervalMs);
  registerGauge('streamer_pending_rows', 'Rows of user_login not yet in Kafka (read at scrape time)', () => countPending(pool));
  registerGauge('streamer_failed_rows', 'Rows recorded in streamer_failed_rows (read at scrape time)', async () =>
    Number((await pool.query<{ n: string }>(COUNT_FAILED)).rows[0]?.n ?? 0),
  );
  wake('start-up');
  running = loop();
  log.info({ topic: config.kafkaTopic, batchSize: config.producerBatchSize, sweepIntervalMs: config.sweepIntervalMs }, 'producer started');

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
 * `streamer producer --sweep`: drains everything pending once and returns. Fails (throws) on the
 * first error instead of retrying: the operator is watching.
 */
export async function sweepOnce(
  config: Config,
  logger: Logger,
  onProgress?: (done: number, total: number) => void,
): Promise<SweepResult> {
  const log = logger.child({ component: 'sweep' });
  const pool = createPool(config, logger, 'streamer-sweep');
  const publisher = createPublisher(config, logger);
  const started = Date.now();
  let published = 0;
  let failed = 0;
  try {
    await assertPgReachable(pool, config);
    await publisher.connect();
    const total = await countPending(pool);
    onProgress?.(0, total);
    for (;;) {
      const r = await drainBatch(pool, publisher, config, log);
      published += r.published;
      failed += r.failed;
      onProgress?.(published + failed, Math.max(total, published + failed));
      // Unlike the long-running loop, stop only when a claim finds nothing: rows locked by a
      // concurrent producer are skipped here and published by that producer.
      if (r.claimed === 0) break;
    }
  } finally {
    await publisher.close();
    await pool.end().catch(() => {});
  }
  return { published, failed, ms: Date.now() - started };
}
