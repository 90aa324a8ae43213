// The three services are really there: a row through PostgreSQL, a message through Kafka, a row
// through ClickHouse — each in this file's own database / topic.
import { createClient } from '@clickhouse/client';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isolate, type Isolated } from '../support/isolation.js';

let iso: Isolated;
beforeAll(async () => {
  iso = await isolate();
});
afterAll(async () => {
  await iso?.cleanup();
});

describe('smoke: the real services answer', () => {
  it('PostgreSQL stores and returns a row', async () => {
    const c = new pg.Client({ connectionString: iso.config.databaseUrl });
    await c.connect();
    try {
      await c.query('CREATE TABLE t (id int PRIMARY KEY, name text)');
      await c.query('INSERT INTO t VALUES ($1, $2)', [1, 'zoë 🚀']);
      const { rows } = await c.query('SELECT id, name FROM t');
      expect(rows).toEqual([{ id: 1, name: 'zoë 🚀' }]);
    } finally {
      await c.end();
    }
  });

  it('Kafka carries a message from a producer to a consumer', async () => {
    const kafka = new Kafka({ brokers: iso.config.kafkaBrokers, logLevel: logLevel.NOTHING });
    const topic = iso.config.kafkaTopic;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ key: '1', value: 'hello' }] });
    await producer.disconnect();
    const consumer = kafka.consumer({ groupId: iso.config.kafkaGroupId });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const got = await new Promise<string>((resolve) => {
      void consumer.run({ eachMessage: async ({ message }) => resolve(`${message.key}=${message.value}`) });
    });
    await consumer.disconnect();
    expect(got).toBe('1=hello');
  });

  it('ClickHouse stores and returns a row', async () => {
    const ch = createClient({ url: iso.config.clickhouseUrl, database: iso.config.clickhouseDatabase });
    try {
      await ch.command({ query: 'CREATE TABLE t (id UInt64, name String) ENGINE = MergeTree ORDER BY id' });
      await ch.insert({ table: 't', values: [{ id: 7, name: 'zoë 🚀' }], format: 'JSONEachRow' });
      const rows = await (await ch.query({ query: 'SELECT id, name FROM t', format: 'JSONEachRow' })).json();
      expect(rows).toEqual([{ id: '7', name: 'zoë 🚀' }]);
    } finally {
      await ch.close();
    }
  });
});
