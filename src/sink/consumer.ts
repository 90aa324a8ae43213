/**
 * Kafka → ClickHouse, for every configured table: reads each table's topic in one consumer group
 * and hands each partition's batch to the runner (runner.ts: batching, retries, stop, rebalances,
 * commits); the runner calls `store` below for each batch — ClickHouse (one TableSink per table,
 * sink.ts, which also reads each message), dead letters (dead-letters.ts) — and commits the
 * offsets once it is stored. A crash anywhere before the commit redelivers the batch, and the
 * sink's existence check makes the second delivery a no-op: exactly once in effect.
 *
 *   kafkajs eachBatch ──► ConsumerRunner.handle ──► BatchBuffer ──(due)──► store:
 *       per table: sink.write (read, store) ─► dead letters   ──► CommitQueue ──► commit
 *
 * Only `kafkaSide` below touches kafkajs; the rest sees InboundMessage.
 */
import '../kafka/kafkajs-patch.js'; // first: it must run before kafkajs loads
import { Partitioners, type Consumer, type IHeaders, type KafkaMessage } from 'kafkajs';
import { partitionKey, type TopicOffset } from './batch.js';
import { checkClickHouse, clickhouseFailure, clickhouseNow, createClickHouse, missingWhileLoading } from './clickhouse.js';
import { capabilities } from '../tables/server.js';
import type { Config } from '../config/config.js';
import { sendDeadLetters, type DeadLetterInput, type DeadLetterRecord } from './dead-letters.js';
import { describeError, StreamerError, UnreachableError } from '../common/errors.js';
import { takeOverEarlierOffsets } from '../kafka/group-offsets.js';
import { createKafka, isRecordRejected, kafkaFailure, kafkaUnreachableMessage, UNKNOWN_TOPIC_TEXT, type KafkaLogEntry } from '../kafka/kafka.js';
import { FetchedRecord } from '../kafka/record-batch.js';
import type { Logger } from '../common/logger.js';
import { metrics } from '../ops/metrics.js';
import { backoffDelay } from '../common/retry.js';
import { ConsumerRunner } from './runner.js';
import { tableKey } from '../config/tables.js';
import { TableSink, type SinkInput } from './sink.js';

/** A consumed message as the rest of the code sees it. */
export interface InboundMessage {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
  headers: Record<string, Buffer | string | (Buffer | string)[] | undefined>;
  /** The message itself: so it is its own sink input (SinkInput.ref), with no object made per message for the sink. */
  ref: InboundMessage;
  /** The value as a span of the fetch's bytes (SinkInput.bytes), when the record was read in place (a valueAt below 0: a null value). */
  bytes?: Buffer | null;
  valueAt?: number;
  valueEnd?: number;
}

export interface RunningConsumer {
  /** Graceful: stores and commits what was read, then leaves the group. */
  stop(): Promise<void>;
  /** Resolves once stopped; rejects on an error the consumer cannot recover from (its message says why). */
  done: Promise<void>;
  /** False while batches cannot be stored (ClickHouse or Kafka failing): for /readyz. */
  readonly ready: boolean;
}

/** A table as the consumer writes it. */
interface TableTarget {
  /** The PostgreSQL table ([schema.]table), the metrics' label. */
  table: string;
  topic: string;
  dlqTopic: string;
  sink: TableSink<InboundMessage>;
}

export async function startConsumer(config: Config, logger: Logger): Promise<RunningConsumer> {
  const log = logger.child({ component: 'consumer' });
  const client = createClickHouse(config, logger);
  const k = kafkaSide(config, logger);
  const targets = new Map<string, TableTarget>();
  try {
    const version = await checkClickHouse(client, config);
    const caps = capabilities(version);
    for (const t of config.tables) {
      targets.set(t.topic, { table: tableKey(t), topic: t.topic, dlqTopic: t.dlqTopic, sink: await TableSink.open<InboundMessage>(client, config.clickhouseDatabase, t.clickhouseTable, caps, logger) });
    }
    const dlt = await (await client.query({ query: "SELECT toString(count()) AS n FROM system.tables WHERE database = currentDatabase() AND name = 'streamer_dead_letters'", format: 'JSONEachRow' })).json<{ n: string }>();
    if (dlt[0]?.n === '0') throw new StreamerError(`ClickHouse table ${config.clickhouseDatabase}.streamer_dead_letters does not exist — create it with "streamer migrate"`);
    await k.check();
    // Every table's series from the start, at 0: dashboards and alerts see a table before its first row.
    for (const { table } of targets.values()) for (const c of [metrics.rowsInserted, metrics.rowsDuplicate, metrics.deadLetters]) c.inc({ table }, 0);
  } catch (err) {
    await client.close().catch(() => {});
    throw err;
  }
  const totals = { inserted: 0, duplicates: 0, deadLettered: 0, truncates: 0 };
  /** When the tables were last seen to exist (opened, or a batch stored): see missingWhileLoading. */
  let lastStoredAt = Date.now();

  /** Records dead letters in streamer_dead_letters (sql/clickhouse/0002), for verify and status. */
  async function recordDeadLetters(letters: readonly DeadLetterInput[]): Promise<void> {
    const at = clickhouseNow();
    await client.insert({
      table: 'streamer_dead_letters',
      values: letters.map((l) => ({ topic: l.topic, partition: l.partition, offset: l.offset, key: l.key?.toString('utf8') ?? '', reason: l.reason, dead_lettered_at: at })),
      format: 'JSONEachRow',
    });
  }

  /**
   * Each table's sink inputs. (The loops over every message are functions of their own, not of
   * the async store: V8 compiles such a loop anew on every call of an async function.)
   */
  function inputsOf(batch: readonly InboundMessage[]): Map<TableTarget, SinkInput<InboundMessage>[]> {
    const inputs = new Map<TableTarget, SinkInput<InboundMessage>[]>();
    let target: TableTarget | undefined;
    let list: SinkInput<InboundMessage>[] = [];
    for (const message of batch) {
      if (target?.topic !== message.topic) {
        target = targets.get(message.topic);
        if (!target) throw foreignTopics([message.topic]);
        list = inputs.get(target) ?? [];
        inputs.set(target, list);
      }
      // The sink reads the value (by a learnt shape, or decodeMessage); what is no message comes back rejected.
      list.push(message);
    }
    return inputs;
  }

  /**
   * Each stored message's time from its claim in PostgreSQL (its timestamp, set by the producer)
   * to now: one observation per run of messages with the same timestamp (a producer's batch shares
   * one claim time).
   */
  function observeLatency(stored: readonly (readonly InboundMessage[])[]): void {
    const now = Date.now();
    let lastTimestamp = '';
    let seconds = -1; // of lastTimestamp
    let run = 0; // messages of lastTimestamp not observed yet
    for (const list of stored) {
      for (const m of list) {
        if (m.timestamp !== lastTimestamp) {
          if (run > 0 && seconds >= 0) metrics.claimToClickhouseSeconds.observe(seconds, run);
          lastTimestamp = m.timestamp;
          const t = Number(m.timestamp);
          seconds = Number.isFinite(t) && t > 0 ? Math.max(0, now - t) / 1000 : -1;
          run = 0;
        }
        run++;
      }
    }
    if (run > 0 && seconds >= 0) metrics.claimToClickhouseSeconds.observe(seconds, run);
  }

  /** decode → store (per table) → dead-letter. Throws a classified StreamerError when it could not; safe to repeat. */
  async function store(batch: InboundMessage[]): Promise<void> {
    const inputs = inputsOf(batch);
    const dead: DeadLetterInput[] = [];
    const letter = ({ key, value, headers, topic, partition, offset, timestamp }: InboundMessage, reason: string): DeadLetterInput => ({ key, value, headers, reason, topic, partition, offset, timestamp });
    let inserted = 0;
    let duplicates = 0;
    let truncates = 0;
    const stored: InboundMessage[][] = []; // per table
    for (const [target, list] of inputs) {
      let result;
      try {
        result = await target.sink.write(list);
      } catch (err) {
        throw await missingWhileLoading(client, err, clickhouseFailure(config, err, `${config.clickhouseDatabase}.${target.sink.name}`), lastStoredAt);
      }
      for (const r of result.rejected) dead.push(letter(r.ref, r.reason));
      metrics.rowsInserted.inc({ table: target.table }, result.inserted);
      metrics.rowsDuplicate.inc({ table: target.table }, result.duplicates);
      inserted += result.inserted;
      duplicates += result.duplicates;
      truncates += result.truncates;
      stored.push(result.stored);
    }
    if (dead.length > 0) {
      try {
        await k.deadLetter(dead, (topic) => (targets.get(topic) as TableTarget).dlqTopic);
      } catch (err) {
        throw kafkaFailure(config, err);
      }
      try {
        await recordDeadLetters(dead);
      } catch (err) {
        throw await missingWhileLoading(client, err, clickhouseFailure(config, err, `${config.clickhouseDatabase}.streamer_dead_letters`), lastStoredAt);
      }
      for (const d of dead) log.warn({ topic: d.topic, partition: d.partition, offset: d.offset, reason: d.reason }, 'dead-lettered a message');
    }
    totals.inserted += inserted;
    totals.duplicates += duplicates;
    totals.deadLettered += dead.length;
    totals.truncates += truncates;
    for (const d of dead) metrics.deadLetters.inc({ table: (targets.get(d.topic) as TableTarget).table });
    metrics.consumerBatchRows.observe(batch.length);
    observeLatency(stored);
    lastStoredAt = Date.now();
    log.debug({ rows: batch.length, inserted, duplicates, truncates, deadLettered: dead.length }, 'batch stored');
  }

  /**
   * kafkajs's assigner hands out the partitions of every topic any member of the group subscribed
   * to, and a member drops those of topics it does not read: a group shared with a pipeline of
   * other tables leaves them unread — the other pipeline stalls without a word. Stop, naming it.
   */
  const foreignTopics = (topics: readonly string[]) =>
    new StreamerError(
      `Kafka gave this consumer partitions of ${topics.join(', ')}, which it does not read: consumer group ${config.kafkaGroupId} is shared with a consumer of other topics, whose partitions would go unread — give each pipeline its own KAFKA_GROUP_ID, or leave it unset (the default is one group per pipeline)`,
    );

  const runner = new ConsumerRunner<InboundMessage>(
    { store, commit: (offsets) => k.commit(offsets) },
    { maxRows: config.consumerMaxBatchRows, flushMs: config.consumerFlushMs, retryMaxDelayMs: config.retryMaxDelayMs, log },
  );

  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      k.pause();
      await runner.stop(); // the batch in flight, then the commits requested — before leaving the group
      await k.stop();
      await client.close().catch(() => {});
      log.info({ ...totals, ...runner.totals }, 'stopped');
    })();
    return stopped;
  };

  try {
    await k.run({
      onMessages: (messages, heartbeat) => runner.handle(messages, heartbeat),
      onAssigned: (assigned) => {
        for (const t of targets.values()) t.sink.forgetWatermarks();
        runner.assigned(assigned);
      },
      onTopicSuspect: (topic) => {
        targets.get(topic)?.sink.forgetWatermarks();
        runner.forgetTopic(topic);
      },
      onForeignTopics: (topics) => runner.fail(foreignTopics(topics)),
    });
  } catch (err) {
    await stop().catch(() => {});
    if ((err as { type?: unknown }).type === 'UNKNOWN_TOPIC_OR_PARTITION') {
      throw new StreamerError(`a Kafka topic of ${config.tables.map((t) => t.topic).join(', ')} does not exist and could not be created — create it, or check the topics (KAFKA_TOPIC, the config file)`, { cause: err });
    }
    throw new UnreachableError(kafkaUnreachableMessage(config, err), err);
  }
  log.info({ topics: [...targets.keys()], groupId: config.kafkaGroupId, maxBatchRows: config.consumerMaxBatchRows, flushMs: config.consumerFlushMs }, 'consuming');

  // The runner ends when stop() is called — or on an error retrying cannot cure, which stops
  // everything and rejects.
  const done = runner.done.then(
    () => stopped ?? stop(),
    async (err: unknown) => {
      log.error({ err: describeError(err) }, 'consumer stopped: an error retrying cannot cure');
      await (stopped ?? stop()).catch(() => {});
      throw err;
    },
  );
  done.catch(() => {}); // observed by the caller; this only keeps Node from calling it unhandled meanwhile
  return {
    stop,
    done,
    get ready() {
      return runner.ready;
    },
  };
}

// ---------------------------------------------------------------- the kafkajs edge

interface KafkaHandlers {
  onMessages(messages: InboundMessage[], heartbeat: () => Promise<void>): Promise<void>;
  /** The partitions this member owns after a rebalance (topic-partition keys). */
  onAssigned(partitions: ReadonlySet<string>): void;
  /** The topic may have been deleted and re-created: the Kafka consumer is about to start over. */
  onTopicSuspect(topic: string): void;
  /** The group assigned this member partitions of topics it did not subscribe to. */
  onForeignTopics(topics: string[]): void;
}

interface KafkaSide {
  /** An UnreachableError with the fix when the brokers do not answer. */
  check(): Promise<void>;
  run(handlers: KafkaHandlers): Promise<void>;
  commit(offsets: TopicOffset[]): Promise<void>;
  /** Resolves once the broker has every dead letter (acks=all); `dlqOf` names the dead-letter topic of a topic. */
  deadLetter(letters: DeadLetterInput[], dlqOf: (topic: string) => string): Promise<void>;
  pause(): void;
  stop(): Promise<void>;
}

function kafkaSide(config: Config, logger: Logger): KafkaSide {
  const log = logger.child({ component: 'consumer' });
  // A fetch answered "this server does not host this topic-partition" means the topic was
  // deleted (or the client's metadata is stale). kafkajs would fetch on at its old positions once
  // the topic exists again — on a re-created topic, skipping every new message below them without
  // a word (issue 9, finding 5: 293 of 300 rows). Kafka deletes the group's offsets with the topic,
  // so a new kafkajs consumer starts at the new topic's beginning: restart it, after dropping the
  // commits not yet sent. Stale metadata costs a rejoin and a re-read since the last commit.
  const topics = config.tables.map((t) => t.topic);
  const watch = (entry: KafkaLogEntry) => {
    if (!stopped && consumer && !restarting && String(entry.error ?? '').includes(UNKNOWN_TOPIC_TEXT)) {
      log.warn(
        { topics, err: UNKNOWN_TOPIC_TEXT },
        `Kafka says a topic of ${topics.join(', ')} is not there: it was deleted (or metadata is stale). Restarting the Kafka consumer, which then reads each topic from the group's committed offsets — from its beginning if it was re-created`,
      );
      for (const t of topics) handlers.onTopicSuspect(t);
      scheduleRestart(0);
    }
  };
  const kafka = createKafka(config, logger, '-consumer', watch);
  // Not idempotent: dead letters are at-least-once anyway (a crash before the commit sends them
  // again), and kafkajs marks its idempotent producer experimental.
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  let consumer: Consumer | null = null;
  let stopped = false;
  let restartAttempt = 0;
  let restartTimer: NodeJS.Timeout | null = null;
  let restarting = false; // from a scheduled restart until the new member joins
  let handlers: KafkaHandlers = { onMessages: async () => {}, onAssigned: () => {}, onTopicSuspect: () => {}, onForeignTopics: () => {} };

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
      // How long a rebalance waits for members to rejoin: a member gives up what it cannot store
      // and rejoins at once, but waits for an insert in flight (≤ CLICKHOUSE_REQUEST_TIMEOUT_MS,
      // which config.ts keeps below this).
      rebalanceTimeout: config.consumerRebalanceTimeoutMs,
      // kafkajs's metadata requests would otherwise create a missing topic with the broker's
      // defaults — re-creating at once a topic an operator just deleted (check() creates ours at
      // start, and the producer creates it on its first publish).
      allowAutoTopicCreation: false,
      retry: { retries: 5, initialRetryTime: 300, maxRetryTime: 5000, restartOnFailure: async () => true },
    });
    c.on(c.events.CRASH, ({ payload }) => {
      log.warn({ err: describeError(payload.error), restartedByKafkajs: payload.restart }, 'Kafka consumer crashed');
      // kafkajs restarts by itself after a retriable error only; anything else would leave us
      // running without reading: restart it ourselves, with the same capped backoff.
      if (!payload.restart && !stopped && consumer === c) scheduleRestart();
    });
    c.on(c.events.RECEIVED_UNSUBSCRIBED_TOPICS, ({ payload }) => handlers.onForeignTopics(payload.topicsNotSubscribed));
    c.on(c.events.GROUP_JOIN, ({ payload }) => {
      restartAttempt = 0;
      restarting = false;
      const assigned = new Set<string>();
      for (const [topic, partitions] of Object.entries(payload.memberAssignment)) {
        for (const partition of partitions) assigned.add(partitionKey({ topic, partition }));
      }
      handlers.onAssigned(assigned);
      log.info({ assignment: payload.memberAssignment }, 'joined the consumer group');
    });
    consumer = c;
    await c.connect();
    await c.subscribe({ topics, fromBeginning: true });
    await c.run({
      // Every partition's batch may be in flight at once, so that they share one insert.
      partitionsConsumedConcurrently: 64,
      autoCommit: false, // committed by the runner, after ClickHouse and the dead-letter topic acknowledged
      // The fetch position moves on when eachBatch returns; it throws instead when the runner gave
      // the partition up (a rebalance), so those offsets are not resolved.
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch, heartbeat, isRunning, isStale }) => {
        if (!isRunning() || isStale()) return;
        await handlers.onMessages(inboundOf(batch.topic, batch.partition, batch.messages), heartbeat);
      },
    });
  }

  function scheduleRestart(delayMs = backoffDelay(restartAttempt + 1, config.retryMaxDelayMs)): void {
    if (restartTimer) return;
    restarting = true;
    restartAttempt++;
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
        for (const topic of config.tables.flatMap((t) => [t.topic, t.dlqTopic])) {
          await admin.createTopics({ topics: [{ topic }], waitForLeaders: true }).catch((err: unknown) => {
            log.warn({ topic, err: describeError(err) }, 'could not create the topic; it must exist');
          });
        }
        if (config.kafkaGroupIdDefault) {
          const target = { groupId: config.kafkaGroupId, clickhouseUrl: config.clickhouseUrl, database: config.clickhouseDatabase, topics };
          await takeOverEarlierOffsets(admin, target, log).catch((err: unknown) =>
            log.warn({ groupId: config.kafkaGroupId, err: describeError(err) }, 'could not look for the committed offsets of earlier default consumer groups; partitions this group never committed are read from their beginning'),
          );
        }
      } finally {
        await admin.disconnect().catch(() => {});
      }
    },
    async run(h) {
      handlers = h;
      await producer.connect();
      await startGroupMember();
    },
    async commit(offsets) {
      if (!consumer) throw new Error('no Kafka consumer');
      await consumer.commitOffsets(offsets);
    },
    async deadLetter(letters, dlqOf) {
      const byTopic = new Map<string, DeadLetterInput[]>();
      for (const l of letters) byTopic.set(dlqOf(l.topic), [...(byTopic.get(dlqOf(l.topic)) ?? []), l]);
      for (const [dlq, list] of byTopic) {
        const send = async (records: DeadLetterRecord[]) => {
          await producer.send({ topic: dlq, acks: -1, messages: records });
        };
        await sendDeadLetters(list, send, isRecordRejected, (l, bytes) =>
          log.warn({ topic: l.topic, partition: l.partition, offset: l.offset, originalBytes: l.value?.length ?? 0, bytesSent: bytes }, 'a dead letter was too large for the dead-letter topic: recorded with its value truncated (x-dlq-value-truncated)'),
        );
      }
    },
    pause() {
      try {
        consumer?.pause(topics.map((topic) => ({ topic })));
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

/**
 * A partition's fetched messages as the consumer's. A record read in place (FetchedRecord: every
 * uncompressed batch) is its own message, its topic and partition set: no second object per
 * message, which the consumer holds until its batch is stored (a young-generation collection
 * copies what is alive: a drain's took 14 % less time without it, bench/README.md "2026-11-27
 * (night)").
 */
export function inboundOf(topic: string, partition: number, messages: readonly KafkaMessage[]): InboundMessage[] {
  const out = new Array<InboundMessage>(messages.length);
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as KafkaMessage;
    out[i] = m instanceof FetchedRecord ? m.received(topic, partition) : new Inbound(topic, partition, m);
  }
  return out;
}

/**
 * A consumed message of a record kafkajs decoded itself (a compressed batch): its key and value
 * are read from the record when asked. (A FetchedRecord is its own message; the sink reads its
 * value's bytes where they are.)
 */
class Inbound implements InboundMessage {
  readonly offset: string;
  readonly timestamp: string;
  readonly headers: IHeaders;
  readonly ref: InboundMessage;

  constructor(
    readonly topic: string,
    readonly partition: number,
    private readonly record: KafkaMessage,
  ) {
    this.offset = record.offset;
    this.timestamp = record.timestamp;
    this.headers = (record.headers ?? {}) as IHeaders;
    this.ref = this;
  }

  get key(): Buffer | null {
    return this.record.key ?? null;
  }

  get value(): Buffer | null {
    return this.record.value ?? null;
  }
}
