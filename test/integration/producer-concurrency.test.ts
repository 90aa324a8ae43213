// PRODUCER_CONCURRENCY (issue 14): several batches of a table in flight at once, claims and
// publishes kept in order. What a consumer relies on: every change exactly once, and in each
// partition the versions increasing with the offset (the consumer's watermarks skip their lookup
// then). Flag mode (user_login) and change-log mode (any other table).
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { readTopic } from '../support/kafka.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { withPg } from '../support/pg.js';

const isolated: Isolated[] = [];
afterAll(async () => {
  for (const i of isolated) await i.cleanup();
});

async function checkTopic(iso: Isolated, topic: string, n: number): Promise<void> {
  const messages = await readTopic(iso.config, n, topic);
  expect(messages).toHaveLength(n);
  const ids = messages.map((m) => Number(JSON.parse(m.value!.toString()).id)).sort((a, b) => a - b);
  expect(ids).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  const byPartition = new Map<number, number[]>();
  for (const m of [...messages].sort((a, b) => Number(a.offset) - Number(b.offset))) {
    byPartition.set(m.partition, [...(byPartition.get(m.partition) ?? []), Number(JSON.parse(m.value!.toString())._version)]);
  }
  for (const versions of byPartition.values()) {
    for (let i = 1; i < versions.length; i++) expect(versions[i]).toBeGreaterThan(versions[i - 1] as number);
  }
}

describe('PRODUCER_CONCURRENCY=3, batches of 500', () => {
  const settings = { PRODUCER_CONCURRENCY: '3', PRODUCER_BATCH_SIZE: '500' };

  it('flag mode: 6,000 rows, each once, versions increasing in every partition', async () => {
    const iso = await isolate(settings);
    isolated.push(iso);
    expect((await runCli(['migrate'], iso.env)).code).toBe(0);
    await withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username, event_type, event_time) SELECT 'u' || g, 'login', now() FROM generate_series(1, 6000) g`));
    const r = await runCli(['producer', '--sweep'], iso.env);
    expect(r.stdout).toMatch(/^published 6000 rows/m);
    await checkTopic(iso, iso.config.kafkaTopic, 6000);
  });

  it('change-log mode: 6,000 rows, each once, versions increasing in every partition', async () => {
    const base = await isolate(settings);
    isolated.push(base);
    const topic = `${base.config.kafkaTopic}_parcels`;
    const file = path.join(tmpdir(), `streamer-concurrency-${base.config.clickhouseDatabase}.json`);
    writeFileSync(file, JSON.stringify({ tables: { 'public.parcels': { topic } } }));
    const env = { ...base.env, KAFKA_TOPIC: '', STREAMER_TABLES: 'public.parcels', STREAMER_CONFIG: file };
    await withPg(base.config, (c) => c.query('CREATE TABLE parcels (id bigint PRIMARY KEY, weight numeric)'));
    expect((await runCli(['migrate'], env)).code).toBe(0);
    await withPg(base.config, (c) => c.query(`INSERT INTO parcels SELECT g, g / 10.0 FROM generate_series(1, 6000) g`));
    const r = await runCli(['producer', '--sweep'], env);
    expect(r.stdout).toMatch(/^published 6000 rows/m);
    await checkTopic(base, topic, 6000);
  });
});
