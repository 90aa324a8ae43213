#!/usr/bin/env node
// The seed's own design, written minimally, as the benchmark's baseline (run by run.mjs as a
// child process on a database already filled with pending rows):
//
//   producer: loop { SELECT one pending row; send it to Kafka and wait for the ack; UPDATE it sent }
//   consumer: kafkajs eachMessage → one ClickHouse INSERT per row, offsets auto-committed
//
// Both run side by side in this process until ClickHouse holds --rows rows; prints one JSON line:
// producer rows/s (all rows marked sent) and end-to-end rows/s (all rows in ClickHouse).
// Environment: DATABASE_URL, KAFKA_BROKERS, KAFKA_TOPIC, CLICKHOUSE_URL, CLICKHOUSE_DATABASE.
import { createClient } from '@clickhouse/client';
import { Kafka, logLevel } from 'kafkajs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { clickhouse, nowMs, serviceUrls, sleep } from './common.mjs';

const { values } = parseArgs({ options: { rows: { type: 'string' }, 'timeout-s': { type: 'string', default: '600' } } });
const rows = Number(values.rows);
const s = serviceUrls();
const topic = process.env.KAFKA_TOPIC;
const database = process.env.CLICKHOUSE_DATABASE;
const kafka = new Kafka({ clientId: 'bench-baseline', brokers: s.kafkaBrokers.split(','), logLevel: logLevel.NOTHING });

const db = new pg.Client({ connectionString: s.databaseUrl });
await db.connect();
const producer = kafka.producer();
await producer.connect();
const consumer = kafka.consumer({ groupId: `${topic}-baseline` });
await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: true });
const ch = createClient({ url: s.clickhouseUrl, username: s.clickhouseUser, password: s.clickhousePassword, database });
const probe = clickhouse(s.clickhouseUrl, { user: s.clickhouseUser, password: s.clickhousePassword, database });

const start = nowMs();
let stored = 0;
let chErrors = 0;
let fatal = null; // an insert error retrying cannot cure (the table's columns, say): the run stops with it
await consumer.run({
  eachMessage: async ({ message, partition }) => {
    const e = JSON.parse(message.value.toString());
    const row = {
      id: e.id,
      username: e.username,
      event_type: e.event_type,
      event_time: e.event_time === null ? null : e.event_time.slice(0, 19),
      // The table is the streamer's (its metadata columns since ecf3222: _kafka_partition, …;
      // _version and _deleted take their defaults).
      _kafka_partition: partition,
      _kafka_offset: Number(message.offset),
      _ingested_at: new Date().toISOString().slice(0, 19).replace('T', ' '),
    };
    while (fatal === null) {
      try {
        await ch.insert({ table: 'user_login', values: [row], format: 'JSONEachRow' });
        stored++;
        return;
      } catch (err) {
        // "Too many parts" (code 252): the seed would have crashed; we retry. Anything else stops the run.
        if (!/Too many parts|\b252\b/.test(String(err?.message ?? err))) {
          fatal = err;
          return;
        }
        chErrors++;
        await sleep(100);
      }
    }
  },
});

let produced = 0;
while (fatal === null) {
  const r = await db.query(
    `SELECT id, username, event_type, to_char(event_time, 'YYYY-MM-DD HH24:MI:SS.US') AS event_time
       FROM user_login WHERE sent_to_kafka = FALSE ORDER BY id LIMIT 1`,
  );
  if (r.rows.length === 0) break;
  const row = r.rows[0];
  await producer.send({ topic, acks: -1, messages: [{ key: String(row.id), value: JSON.stringify(row) }] });
  await db.query('UPDATE user_login SET sent_to_kafka = TRUE WHERE id = $1', [row.id]);
  produced++;
}
const producerMs = nowMs() - start;

const deadline = Date.now() + Number(values['timeout-s']) * 1000;
let inClickhouse = 0;
while (Date.now() < deadline && fatal === null) {
  inClickhouse = await probe.scalar('SELECT count() FROM user_login');
  if (inClickhouse >= rows) break;
  await sleep(20);
}
if (fatal !== null || inClickhouse < rows) {
  process.stderr.write(`baseline: ${fatal !== null ? `ClickHouse refused an insert: ${fatal?.message ?? fatal}` : `ClickHouse holds ${inClickhouse} of ${rows} rows after ${values['timeout-s']} s`}\n`);
  process.exit(1);
}
const e2eMs = nowMs() - start;
await consumer.disconnect().catch(() => {});
await producer.disconnect().catch(() => {});
await ch.close();
await db.end();
process.stdout.write(
  `${JSON.stringify({ rows, produced, stored, inClickhouse, chErrors, producerMs, e2eMs, producerRowsPerS: (produced / producerMs) * 1000, e2eRowsPerS: (inClickhouse / e2eMs) * 1000 })}\n`,
);
setTimeout(() => process.exit(0), 500).unref();
