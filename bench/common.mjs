// Helpers shared by the benchmark harness (run.mjs), the load process (load.mjs) and the seed's
// design (baseline.mjs). Plain ESM JavaScript: runs with `node` after `npm ci`, no build step of
// its own (the streamer itself is used from dist/, built by `npm run build`).
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Kafka, logLevel } from 'kafkajs';

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export const nowMs = () => performance.timeOrigin + performance.now();

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const suffix = () => randomBytes(4).toString('hex');

/** The three services, from the same variables (and defaults) as the streamer itself. */
export function serviceUrls(env = process.env) {
  return {
    databaseUrl: env.DATABASE_URL || 'postgres://postgres:postgres@127.0.0.1:5432/postgres',
    kafkaBrokers: env.KAFKA_BROKERS || '127.0.0.1:9092',
    clickhouseUrl: env.CLICKHOUSE_URL || 'http://127.0.0.1:8123',
    clickhouseUser: env.CLICKHOUSE_USER || 'default',
    clickhousePassword: env.CLICKHOUSE_PASSWORD || '',
  };
}

/** DATABASE_URL with another database name. */
export function withDatabase(databaseUrl, db) {
  const u = new URL(databaseUrl);
  u.pathname = `/${db}`;
  return u.toString();
}

/**
 * A minimal ClickHouse HTTP client (fetch keeps the socket alive between calls): the latency
 * poller issues ~150 queries a second and wants as little overhead per query as possible.
 */
export function clickhouse(url, { user = 'default', password = '', database } = {}) {
  const base = new URL(url);
  const headers = { 'X-ClickHouse-User': user };
  if (password) headers['X-ClickHouse-Key'] = password;
  async function query(sql, body) {
    const u = new URL(base);
    if (database) u.searchParams.set('database', database);
    let res;
    if (body === undefined) {
      u.searchParams.set('query', sql);
      res = await fetch(u, { method: 'POST', headers });
    } else {
      u.searchParams.set('query', sql);
      res = await fetch(u, { method: 'POST', headers, body });
    }
    const text = await res.text();
    if (!res.ok) throw new Error(`ClickHouse: ${text.trim().slice(0, 500)} (query: ${sql.slice(0, 200)})`);
    return text;
  }
  return {
    query,
    /** First column of the first row, as a number. */
    async scalar(sql) {
      const t = (await query(sql)).trim();
      return Number(t.split('\t')[0]);
    },
  };
}

/** Percentile (nearest rank) of a sorted array. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function summarize(values) {
  const s = Float64Array.from(values).sort();
  const sum = s.reduce((a, b) => a + b, 0);
  return {
    n: s.length,
    mean: s.length ? sum / s.length : null,
    p50: percentile(s, 50),
    p95: percentile(s, 95),
    p99: percentile(s, 99),
    max: s.length ? s[s.length - 1] : null,
  };
}

/**
 * id → Kafka timestamp (ms) of the first message of each id in `topic`, read from its beginning
 * with the throw-away group `groupId` (deleted after), until `expected` ids or `timeoutMs`.
 * `idOf(message)` gives a message's id, or undefined to skip it.
 */
export async function readTopicTimes({ brokers, topic, groupId, expected, idOf, timeoutMs = 60_000 }) {
  const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 });
  const out = new Map();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) {
          const id = idOf(m);
          if (id !== undefined && !out.has(id)) out.set(id, Number(m.timestamp));
        }
      },
    });
    const deadline = Date.now() + timeoutMs;
    while (out.size < expected && Date.now() < deadline) await sleep(50);
  } finally {
    await consumer.disconnect().catch(() => {});
    const admin = kafka.admin();
    await admin.connect().then(() => admin.deleteGroups([groupId])).catch(() => {});
    await admin.disconnect().catch(() => {});
  }
  return out;
}
