// bench/sink.mjs's fixture: user_login's sink of a build, against a ClickHouse client that only
// hands each insert's body (the query's text after its first line in builds before 2026-11-27 05:30,
// a Buffer since) to `onInsert`, and batches of user_login upserts as the producer writes them.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** CONSUMER_MAX_BATCH_ROWS's default. */
export const ROWS = 20_000;

// user_login's ClickHouse table on 18.16, as system.columns describes it.
const COLUMNS = [
  ['id', 'Int32', 1],
  ['username', 'Nullable(String)', 0],
  ['event_type', 'Nullable(String)', 0],
  ['event_time', "Nullable(DateTime('UTC'))", 0],
  ['_version', 'UInt64', 0],
  ['_deleted', 'UInt8', 0],
  ['_kafka_partition', 'UInt32', 0],
  ['_kafka_offset', 'UInt64', 0],
  ['_ingested_at', "DateTime('UTC')", 0],
];

/** The TableSink of the build in folder `build` (default dist) for user_login on 18.16. */
export async function openSink(build, onInsert) {
  const dist = pathToFileURL(resolve(build ?? 'dist')).href;
  const { TableSink } = await import(`${dist}/sink/sink.js`);
  const { createLogger } = await import(`${dist}/common/logger.js`);
  const { capabilities } = await import(`${dist}/tables/server.js`);
  const client = {
    query: async ({ query }) => ({
      json: async () => (query.startsWith('SELECT name, type') ? COLUMNS.map(([name, type, sorting]) => ({ name, type, sorting, kind: '' })) : / AS v FROM /.test(query) ? [{ v: '0' }] : []),
    }),
    // The body: a stream of bytes since the sink writes them itself, before that the query's text after its first line.
    exec: async ({ query, values }) => {
      onInsert(values ? Buffer.concat(await values.toArray()) : query.slice(query.indexOf('\n') + 1));
      return { stream: { resume() {} } };
    },
    command: async () => ({}),
  };
  return TableSink.open(client, 'db', 'user_login', capabilities({ major: 18, minor: 16 }), createLogger({ level: 'silent', secrets: [] }));
}

let version = 1;
let offset = 0;
/**
 * ROWS sink inputs of user_login upserts, distinct ids, over 3 partitions. The values are views
 * into one buffer, as kafkajs hands messages over from a fetch.
 */
export function batch() {
  const texts = [];
  for (let i = 0; i < ROWS; i++) {
    const id = 1 + (((offset + i) * 7) % 1_000_000);
    texts.push(`{"id":${id},"username":"user_${id}","event_type":"login","event_time":"2026-11-26 21:${String(i % 60).padStart(2, '0')}:13.123456","_op":"upsert","_version":${version++}}`);
  }
  const fetched = Buffer.from(texts.join(''));
  const out = [];
  let at = 0;
  for (let i = 0; i < ROWS; i++) {
    const length = Buffer.byteLength(texts[i] ?? '');
    out.push({ value: fetched.subarray(at, at + length), topic: 'user_login', partition: i % 3, offset: String(offset++), ref: i });
    at += length;
  }
  return out;
}
