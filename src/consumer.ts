/**
 * Kafka → ClickHouse. Reads `user_event` in a consumer group, gathers messages of all partitions
 * into batches, stores each batch with ONE ClickHouse insert (sink.ts), dead-letters what cannot
 * be stored, and only then commits the offsets. A crash anywhere before the commit redelivers the
 * batch, and the sink's existence check makes the second delivery a no-op: exactly once in effect.
 *
 *   kafkajs eachBatch ──► BatchBuffer ──(due: maxRows, or first row waited flushMs)──► flush:
 *       decode ─► sink.write ─► dead letters ─► commit
 *
 * Only `kafkaSide` below touches kafkajs; the rest sees InboundMessage and the KafkaSide interface
 * (check, run, commit, deadLetter, pause, stop).
 */
import './kafkajs-patch.js'; // first: it must run before kafkajs loads
import { Partitioners, type Consumer, type IHeaders, type KafkaMessage } from 'kafkajs';
import { checkClickHouse, clickhouseErrorCode, clickhouseErrorText, clickhouseUnreachableMessage, createClickHouse } from './clickhouse.js';
import { decodeMessage } from './codec.js';
import type { Config } from './config.js';
import { describeError, StreamerError, UnreachableError } from './errors.js';
import { createKafka, kafkaUnreachableMessage } from './kafka.js';
import type { Logger } from './logger.js';
import { metrics } from './metrics.js';
import { backoffDelay, sleep } from './retry.js';
import { BatchBuffer, CommitQueue, nextOffsets, Signal } from './batch.js';
import { ClickHouseSink, type SinkInput } from './sink.js';

/** A consumed message as the rest of the code sees it. */
export interface InboundMessage {
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
  headers: Record<string, Buffer | string | (Buffer | string)[] | undefined>;
}

export interface DeadLetter {
  message: InboundMessage;
  reason: string;
}

export interface RunningConsumer {
  /** Graceful: stores and commits what was read, then leaves the group. */
  stop(): Promise<void>;
  /** Resolves once stopped; rejects only on an error the consumer cannot recover from. */
  done: Promise<void>;
  /** False while batches cannot be stored (ClickHouse or Kafka failing): for /readyz. */
  readonly ready: boolean;
}

export async function startConsumer(config: Config, logger: Logger): Promise<RunningConsumer> {
  const log = logger.child({ component: 'consumer' });
  const client = createClickHouse(config, logger);
  const k = kafkaSide(config, logger);
  let sink: ClickHouseSink<InboundMessage>;
  try {
    await checkClickHouse(client, config);
    sink = await ClickHouseSink.open<InboundMessage>(client, config.clickhouseDatabase, logger);
    await k.check();
  } catch (err) {
    await client.close().catch(() => {});
    throw err;
  }
  const buffer = new BatchBuffer<InboundMessage>(config.consumerMaxBatchRows, config.consumerFlushMs);
  const added = new Signal();
  const freed = new Signal();
  const abort = new AbortController();
  let stopping = false;
  const totals = { inserted: 0, duplicates: 0, deadLettered: 0 };
  let storeFailing = false;

  // Per partition, the highest offset stored in ClickHouse (or dead-lettered) by this process.
  const storedUpTo = new Map<number, bigint>();
  const stored = new Signal();
  const commits = new CommitQueue(
    (offsets) => k.commit(offsets),
    // Stored but not committed (group rebalanced, broker restarting): the batch is read again
    // later, and the sink finds every id of it already stored.
    (err) => log.warn({ err: describeError(err) }, 'offset commit failed; the batch will be redelivered and skipped as duplicates'),
  );

  /**
   * kafkajs hands over one partition's batch; it returns only once those messages are stored (or
   * dead-lettered). A rebalance waits for running eachBatch calls, so a consumer never holds
   * messages of a partition that has moved to another member (which would then read them from the
   * older committed offset and insert them too, before either could see the other's rows).
   * The offset commit is not waited for (CommitQueue): by then the rows are in ClickHouse, and a
   * re-read finds them there. Batches of several partitions still share one insert: kafkajs runs
   * several eachBatch calls at once (partitionsConsumedConcurrently) and the flusher takes them
   * together.
   */
  async function onMessages(messages: InboundMessage[], heartbeat: () => Promise<void>): Promise<void> {
    if (messages.length === 0) return;
    // Heartbeats keep the membership while we wait; one that reports a rebalance is not acted on
    // here: the messages are stored first, then kafkajs rejoins.
    const beat = () => heartbeat().catch(() => {});
    // Back-pressure: while a full batch waits (ClickHouse slow or down), stop taking more.
    while (buffer.full() && !stopping) {
      await freed.wait(3000);
      await beat();
    }
    if (stopping) return; // not stored, never committed: the next run reads it again
    buffer.add(messages);
    added.notify();
    const partition = messages[0]!.partition;
    const last = messages.reduce((max, m) => (BigInt(m.offset) > max ? BigInt(m.offset) : max), -1n);
    while (!stopping && (storedUpTo.get(partition) ?? -1n) < last) {
      await stored.wait(3000);
      await beat();
    }
  }

  /** decode → store → dead-letter. Throws when a service is unavailable; safe to repeat. */
  async function store(batch: InboundMessage[]): Promise<void> {
    const inputs: SinkInput<InboundMessage>[] = [];
    const dead: DeadLetter[] = [];
    for (const message of batch) {
      const d = decodeMessage(message.value);
      if (d.ok) inputs.push({ event: d.event, partition: message.partition, offset: message.offset, ref: message });
      else dead.push({ message, reason: d.reason });
    }
    let result;
    try {
      result = await sink.write(inputs);
    } catch (err) {
      const text = clickhouseErrorCode(err) === null ? clickhouseUnreachableMessage(config, err) : `ClickHouse refused the batch: ${clickhouseErrorText(err)}`;
      throw new StreamerError(text, { retriable: true, cause: err });
    }
    for (const r of result.rejected) dead.push({ message: r.ref, reason: r.reason });
    if (dead.length > 0) await k.deadLetter(dead);
    for (const d of dead) {
      log.warn({ partition: d.message.partition, offset: d.message.offset, reason: d.reason }, 'dead-lettered a message');
    }
    totals.inserted += result.inserted;
    totals.duplicates += result.duplicates;
    totals.deadLettered += dead.length;
    metrics.rowsInserted.inc(result.inserted);
    metrics.rowsDuplicate.inc(result.duplicates);
    metrics.deadLetters.inc(dead.length);
    metrics.consumerBatchRows.observe(batch.length);
    // The message timestamp is set by the producer when it claimed the row in PostgreSQL.
    const now = Date.now();
    for (const m of result.stored) {
      const t = Number(m.timestamp);
      if (Number.isFinite(t) && t > 0) metrics.claimToClickhouseSeconds.observe(Math.max(0, now - t) / 1000);
    }
    log.debug({ rows: batch.length, inserted: result.inserted, duplicates: result.duplicates, deadLettered: dead.length }, 'batch stored');
  }

  async function flush(batch: InboundMessage[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await store(batch);
        storeFailing = false;
        if (attempt > 1) log.info({ attempts: attempt }, 'batch stored after retrying');
        break;
      } catch (err) {
        storeFailing = true;
        if (stopping && attempt > 1) {
          log.warn({ rows: batch.length, err: describeError(err) }, 'stopping with a batch not stored: it is not committed and will be read again');
          return;
        }
        const delayMs = backoffDelay(attempt, config.retryMaxDelayMs);
        log.warn({ attempt, delayMs, rows: batch.length, err: describeError(err) }, `could not store a batch; retrying in ${delayMs} ms`);
        await sleep(delayMs, abort.signal);
      }
    }
    const offsets = nextOffsets(batch);
    for (const [partition, next] of offsets) {
      const upTo = BigInt(next) - 1n;
      if ((storedUpTo.get(partition) ?? -1n) < upTo) storedUpTo.set(partition, upTo);
    }
    stored.notify();
    commits.request(offsets);
  }

  const flusher = (async () => {
    for (;;) {
      if (stopping && buffer.size === 0) return;
      const waitMs = stopping ? 0 : buffer.dueIn();
      if (waitMs > 0) {
        await added.wait(waitMs);
        continue;
      }
      const batch = buffer.take();
      freed.notify();
      await flush(batch);
    }
  })();
  flusher.catch(() => {}); // observed by stop() and `done`; this only keeps Node from calling it unhandled meanwhile

  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      stopping = true;
      k.pause();
      added.notify();
      freed.notify();
      stored.notify();
      abort.abort();
      let failure: unknown = null;
      await flusher.catch((err: unknown) => (failure = err));
      await commits.drain(); // before leaving the group, so that the next member starts after it
      await k.stop();
      await client.close().catch(() => {});
      log.info(totals, 'stopped');
      if (failure) throw failure;
    })();
    return stopped;
  };

  try {
    await k.run(onMessages);
  } catch (err) {
    await stop().catch(() => {});
    if ((err as { type?: unknown }).type === 'UNKNOWN_TOPIC_OR_PARTITION') {
      throw new StreamerError(`Kafka topic ${config.kafkaTopic} does not exist and could not be created — create it, or set KAFKA_TOPIC`, { cause: err });
    }
    throw new UnreachableError(kafkaUnreachableMessage(config, err), err);
  }
  log.info({ topic: config.kafkaTopic, groupId: config.kafkaGroupId, maxBatchRows: config.consumerMaxBatchRows, flushMs: config.consumerFlushMs }, 'consuming');

  // The flush loop ends when stop() is called — or on a bug, which stops everything and rejects.
  const done = flusher.then(
    () => stopped ?? stop(),
    async (err: unknown) => {
      log.error({ err }, 'consumer failed');
      await (stopped ?? stop()).catch(() => {});
      throw err;
    },
  );
  return {
    stop,
    done,
    get ready() {
      return !storeFailing && !stopping;
    },
  };
}

// ---------------------------------------------------------------- the kafkajs edge

interface KafkaSide {
  /** An UnreachableError with the fix when the brokers do not answer. */
  check(): Promise<void>;
  run(onMessages: (messages: InboundMessage[], heartbeat: () => Promise<void>) => Promise<void>): Promise<void>;
  commit(offsets: Map<number, string>): Promise<void>;
  /** Resolves once the broker has every dead letter (acks=all). */
  deadLetter(letters: DeadLetter[]): Promise<void>;
  pause(): void;
  stop(): Promise<void>;
}

function kafkaSide(config: Config, logger: Logger): KafkaSide {
  const log = logger.child({ component: 'consumer' });
  const kafka = createKafka(config, logger, '-consumer');
  // Not idempotent: dead letters are at-least-once anyway (a crash before the commit sends them
  // again), and kafkajs marks its idempotent producer experimental.
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  let consumer: Consumer | null = null;
  let stopped = false;
  let restartAttempt = 0;
  let restartTimer: NodeJS.Timeout | null = null;
  let handler: Parameters<KafkaSide['run']>[0] = async () => {};

  async function startGroupMember(): Promise<void> {
    const c = kafka.consumer({
      groupId: config.kafkaGroupId,
      // The broker answers a fetch as soon as one byte is there (minBytes 1), so a new row is
      // seen within milliseconds; maxWait only bounds an idle poll — and so how long stop() and a
      // rebalance wait for the fetch in flight. kafkajs's default is 5 s.
      minBytes: 1,
      maxWaitTimeInMs: 500,
      // 10 s (broker minimum 6 s): after a broker restart the group waits out the old member's
      // session before the new one joins; 30 s (kafkajs's default) stalled consumption that long.
      sessionTimeout: 10_000,
      heartbeatInterval: 3000,
      retry: { retries: 5, initialRetryTime: 300, maxRetryTime: 5000, restartOnFailure: async () => true },
    });
    c.on(c.events.CRASH, ({ payload }) => {
      log.warn({ err: describeError(payload.error), restartedByKafkajs: payload.restart }, 'Kafka consumer crashed');
      // kafkajs restarts by itself after a retriable error only; anything else would leave us
      // running without reading: restart it ourselves, with the same capped backoff.
      if (!payload.restart && !stopped && consumer === c) scheduleRestart();
    });
    c.on(c.events.GROUP_JOIN, ({ payload }) => {
      restartAttempt = 0;
      log.info({ assignment: payload.memberAssignment }, 'joined the consumer group');
    });
    consumer = c;
    await c.connect();
    await c.subscribe({ topic: config.kafkaTopic, fromBeginning: true });
    await c.run({
      // Every partition's batch may be in flight at once, so that they share one insert.
      partitionsConsumedConcurrently: 64,
      autoCommit: false, // committed by us, after ClickHouse and the dead-letter topic acknowledged
      eachBatchAutoResolve: true, // the fetch position moves on; the commit is ours alone
      eachBatch: async ({ batch, heartbeat, isRunning, isStale }) => {
        if (!isRunning() || isStale()) return;
        await handler(batch.messages.map((m) => toInbound(batch.partition, m)), heartbeat);
      },
    });
  }

  function scheduleRestart(): void {
    restartAttempt++;
    const delayMs = backoffDelay(restartAttempt, config.retryMaxDelayMs);
    log.warn({ attempt: restartAttempt, delayMs }, `restarting the Kafka consumer in ${delayMs} ms`);
    restartTimer = setTimeout(() => {
      restartTimer = null;
      if (stopped) return;
      const old = consumer;
      void (async () => {
        await old?.disconnect().catch(() => {});
        try {
          await startGroupMember();
        } catch (err) {
          log.warn({ err: describeError(err) }, 'Kafka consumer restart failed');
          if (!stopped) scheduleRestart();
        }
      })();
    }, delayMs);
  }

  return {
    async check() {
      const admin = kafka.admin({ retry: { retries: 1 } });
      try {
        try {
          await admin.connect();
          await admin.describeCluster();
        } catch (err) {
          throw new UnreachableError(kafkaUnreachableMessage(config, err), err);
        }
        // Create both topics up front if missing (broker's default partitions and replication):
        // subscribing to a topic that does not exist yet fails ("This server does not host this
        // topic-partition") even where the broker auto-creates topics, and the dead-letter topic
        // should not first be needed at the first bad message. Without the right to create
        // topics, they must exist already.
        for (const topic of [config.kafkaTopic, config.kafkaDlqTopic]) {
          await admin.createTopics({ topics: [{ topic }], waitForLeaders: true }).catch((err: unknown) => {
            log.warn({ topic, err: describeError(err) }, 'could not create the topic; it must exist');
          });
        }
      } finally {
        await admin.disconnect().catch(() => {});
      }
    },
    async run(onMessages) {
      handler = onMessages;
      await producer.connect();
      await startGroupMember();
    },
    async commit(offsets) {
      if (!consumer) throw new Error('no Kafka consumer');
      await consumer.commitOffsets([...offsets].map(([partition, offset]) => ({ topic: config.kafkaTopic, partition, offset })));
    },
    async deadLetter(letters) {
      await producer.send({
        topic: config.kafkaDlqTopic,
        acks: -1,
        messages: letters.map(({ message, reason }) => ({
          key: message.key,
          value: message.value,
          headers: {
            ...message.headers,
            'x-dlq-reason': reason.length > 1000 ? `${reason.slice(0, 1000)}…` : reason,
            'x-original-topic': config.kafkaTopic,
            'x-original-partition': String(message.partition),
            'x-original-offset': message.offset,
            'x-original-timestamp': message.timestamp,
          },
        })),
      });
    },
    pause() {
      try {
        consumer?.pause([{ topic: config.kafkaTopic }]);
      } catch {
        // Not running (between restarts): nothing is fetched anyway.
      }
    },
    async stop() {
      stopped = true;
      if (restartTimer) clearTimeout(restartTimer);
      // disconnect() waits for the fetch in flight (≤ maxWaitTimeInMs) and leaves the group.
      await consumer?.disconnect().catch((err: unknown) => log.warn({ err: describeError(err) }, 'leaving the group failed'));
      await producer.disconnect().catch(() => {});
    },
  };
}

function toInbound(partition: number, m: KafkaMessage): InboundMessage {
  return {
    partition,
    offset: m.offset,
    key: m.key ?? null,
    value: m.value ?? null,
    timestamp: m.timestamp,
    headers: (m.headers ?? {}) as IHeaders,
  };
}
