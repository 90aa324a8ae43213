/** Helpers for tests of the consumer: produce test messages, read ClickHouse and the DLQ topic. */
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { Kafka, logLevel, Partitioners, type IHeaders } from 'kafkajs';
import type { Config } from '../../src/config/config.js';
import { createLogger, type Logger } from '../../src/common/logger.js';
import { suffix } from './isolation.js';
import { waitFor as pollUntil } from './wait.js';

export function testLogger(config: Config): Logger {
  return createLogger({ level: config.logLevel, pretty: false });
}

/**
 * Rows of a query in CLICKHOUSE_DATABASE (JSONEachRow: UInt64 comes back as a string). Retries
 * for up to 30 s while ClickHouse does not answer: the outage test of another file may have
 * stopped it for a few seconds.
 */
export async function chQuery<T = Record<string, unknown>>(config: Config, query: string, retryForMs = 30_000): Promise<T[]> {
  const deadline = Date.now() + retryForMs;
  for (;;) {
    const ch = createClient({ url: config.clickhouseUrl, database: config.clickhouseDatabase, keep_alive: { idle_socket_ttl: 1500 }, log: { level: ClickHouseLogLevel.OFF } });
    try {
      return await (await ch.query({ query, format: 'JSONEachRow' })).json<T>();
    } catch (err) {
      // A server answer (Code: N) is the test's business; only "no answer" is waited out.
      if (/^Code: \d+/.test((err as Error).message) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    } finally {
      await ch.close();
    }
  }
}

export async function chCount(config: Config, where = '1'): Promise<number> {
  const rows = await chQuery<{ n: string }>(config, `SELECT count() AS n FROM user_login WHERE ${where}`);
  return Number(rows[0]?.n ?? 0);
}

function anyUnreachable(e: Error & { code?: unknown }): boolean {
  return e.name === 'UnreachableError' || /ECONNREFUSED|ECONNRESET|socket hang up/.test(`${e.message} ${String(e.code)}`);
}

/** Only the local ClickHouse being away (for tests that expect another failure). */
export const clickhouseAway = (e: Error): boolean => e.message.startsWith('ClickHouse at http://127.0.0.1:8123 ');

/**
 * Runs `fn` again while a service does not answer (UnreachableError, ECONNREFUSED/ECONNRESET), for
 * up to 30 s: the outage test of another file may be restarting ClickHouse right now.
 */
export async function whileUnreachable<T>(fn: () => Promise<T>, retryForMs = 30_000, isUnreachable = anyUnreachable): Promise<T> {
  const deadline = Date.now() + retryForMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      const unreachable = isUnreachable(err as Error);
      if (!unreachable || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Polls until `check` returns a value that `done` accepts (the shared poller of wait.ts). */
export function waitFor<T>(check: () => Promise<T>, done: (v: T) => boolean, what: string, timeoutMs = 60_000): Promise<T> {
  return pollUntil(what, async () => {
    const v = await check();
    return done(v) ? v : undefined;
  }, timeoutMs);
}

export function testKafka(config: Config): Kafka {
  return new Kafka({ clientId: `test-${suffix()}`, brokers: config.kafkaBrokers, logLevel: logLevel.NOTHING });
}

export interface RawMessage {
  key: string | Buffer | null;
  value: string | Buffer | null;
}

export async function produce(config: Config, messages: RawMessage[], topic = config.kafkaTopic): Promise<void> {
  const producer = testKafka(config).producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, messages });
  } finally {
    await producer.disconnect();
  }
}

export async function createTopic(config: Config, topic: string, numPartitions = 3): Promise<void> {
  const admin = testKafka(config).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

export interface ReadMessage {
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

/** Reads a topic from the beginning with a throw-away group until `count` messages came. */
export async function readTopic(config: Config, topic: string, count: number, timeoutMs = 60_000): Promise<ReadMessage[]> {
  const consumer = testKafka(config).consumer({ groupId: `test-reader-${suffix()}`, maxWaitTimeInMs: 200 });
  const got: ReadMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${got.length} of ${count} messages from ${topic}`)), timeoutMs);
      void consumer.run({
        eachMessage: async ({ message }) => {
          got.push({ key: message.key?.toString('utf8') ?? null, value: message.value, headers: headerText(message.headers) });
          if (got.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return got;
}

function headerText(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (v === undefined) continue;
    out[k] = (Array.isArray(v) ? v : [v]).map((x) => x.toString()).join(',');
  }
  return out;
}

/** True once the group has committed, on every partition of the topic, the partition's end. */
export async function caughtUp(config: Config, groupId: string, topic = config.kafkaTopic): Promise<boolean> {
  const admin = testKafka(config).admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return ends.every((e) => {
      const c = committed?.partitions.find((p) => p.partition === e.partition);
      return Number(e.high) === 0 || (c !== undefined && Number(c.offset) >= Number(e.high));
    });
  } finally {
    await admin.disconnect();
  }
}
