// The consumer's sink alone, no server: TableSink.write over batches of user_login messages as the
// producer writes them, against a ClickHouse client that only counts the insert's bytes. Prints the
// CPU time per row (garbage collection included) and the insert body's bytes per row, per round.
//
//   node bench/sink.mjs [build folder, default dist] [rounds, default 6]
//
// Two builds alternated on one machine compare their row building (e.g. STREAMER_DIST folders):
//   for d in .bench-a .bench-b .bench-a .bench-b; do node --expose-gc bench/sink.mjs $d; done
// It asserts nothing and writes no JSON: a quick check while working on the sink; the claims in
// README.md come from `bench/run.mjs` parts, whose JSON is kept.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = pathToFileURL(resolve(process.argv[2] ?? 'dist')).href;
const rounds = Number(process.argv[3] ?? 6);
const { TableSink } = await import(`${dist}/sink/sink.js`);
const { createLogger } = await import(`${dist}/common/logger.js`);
const { capabilities } = await import(`${dist}/tables/server.js`);

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
let bodyBytes = 0;
let rowsInserted = 0;
const client = {
  query: async ({ query }) => ({
    json: async () => (query.startsWith('SELECT name, type') ? COLUMNS.map(([name, type, sorting]) => ({ name, type, sorting, kind: '' })) : / AS v FROM /.test(query) ? [{ v: '0' }] : []),
  }),
  exec: async ({ query }) => {
    const body = query.slice(query.indexOf('\n') + 1);
    bodyBytes += Buffer.byteLength(body);
    return { stream: { resume() {} } };
  },
  command: async () => ({}),
};
const sink = await TableSink.open(client, 'db', 'user_login', capabilities({ major: 18, minor: 16 }), createLogger({ level: 'silent', secrets: [] }));

const ROWS = 20_000; // CONSUMER_MAX_BATCH_ROWS's default
let version = 1;
let offset = 0;
function batch() {
  const out = [];
  for (let i = 0; i < ROWS; i++) {
    const id = 1 + ((offset * 7) % 1_000_000);
    const value = Buffer.from(`{"id":${id},"username":"user_${id}","event_type":"login","event_time":"2026-11-26 21:${String(i % 60).padStart(2, '0')}:13.123456","_op":"upsert","_version":${version++}}`);
    out.push({ value, topic: 'user_login', partition: i % 3, offset: String(offset++), ref: i });
  }
  return out;
}

for (let r = 0; r <= rounds; r++) {
  const batches = Array.from({ length: 10 }, batch);
  globalThis.gc?.();
  bodyBytes = 0;
  rowsInserted = 0;
  const cpu0 = process.cpuUsage();
  for (const b of batches) rowsInserted += (await sink.write(b)).inserted;
  const cpu = process.cpuUsage(cpu0);
  const rows = batches.length * ROWS;
  if (rowsInserted !== rows) throw new Error(`${rowsInserted} of ${rows} rows inserted`);
  // Round 0 warms the JIT up and learns the message shape: not printed.
  if (r > 0) console.log(`round ${r}: ${(((cpu.user + cpu.system) * 1000) / rows).toFixed(0)} ns CPU per row, ${(bodyBytes / rows).toFixed(1)} bytes of insert per row`);
}
