// Running streamer as users deploy it (issue 13): producer, consumer and run side by side on one
// host with zero configuration, the health server on another address (HTTP_HOST), and the default
// consumer group — derived per pipeline — continuing from an earlier default group's offsets
// instead of re-reading its topic.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_HTTP_PORTS } from '../../src/config/config.js';
import { LEGACY_GROUP_ID } from '../../src/config/group.js';
import { runCli, startCli } from '../support/cli.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { withPg } from '../support/pg.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

type Cli = ReturnType<typeof startCli>;
const running: Cli[] = [];
const isolated: Isolated[] = [];
const groups: string[] = [];

function start(args: string[], env: Record<string, string>): Cli {
  const c = startCli(args, env);
  running.push(c);
  return c;
}
async function stopAll(): Promise<void> {
  for (const c of running.splice(0)) {
    if (c.child.exitCode === null) c.child.kill('SIGTERM');
    await c.exited;
  }
}
afterEach(stopAll);
afterAll(async () => {
  const admin = new Kafka({ brokers: (isolated[0]?.config.kafkaBrokers ?? ['127.0.0.1:9092']), logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.deleteGroups(groups).catch(() => {});
  await admin.disconnect();
  for (const i of isolated) await i.cleanup();
});

async function fresh(env: Record<string, string>): Promise<Isolated> {
  const i = await isolate(env);
  isolated.push(i);
  return i;
}

const insert = (iso: Isolated, n: number) =>
  withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username, event_type, event_time) SELECT 'u' || g, 'login', '2026-11-26 12:00:00' FROM generate_series(1, $1::int) g`, [n]));

async function clickhouseIds(iso: Isolated, table = 'user_login'): Promise<number[]> {
  const ch: ClickHouseClient = createClient({ url: iso.config.clickhouseUrl, database: iso.config.clickhouseDatabase });
  try {
    const rows = await (await ch.query({ query: `SELECT toUInt64(id) AS id FROM ${table} ORDER BY id`, format: 'JSONEachRow' })).json<{ id: string | number }>();
    return rows.map((r) => Number(r.id));
  } finally {
    await ch.close();
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function readyz(host: string, port: number): Promise<{ status: number; body: { ready: boolean; notReady: string[] } } | undefined> {
  try {
    const r = await fetch(`http://${host}:${port}/readyz`);
    return { status: r.status, body: (await r.json()) as { ready: boolean; notReady: string[] } };
  } catch {
    return undefined;
  }
}

describe('three commands on one host, zero configuration', () => {
  it('producer, consumer and run each serve on their own default port; a busy port is one clear line', async () => {
    // HTTP_PORT and HTTP_HOST unset: the defaults a user gets.
    const iso = await fresh({ HTTP_PORT: '', HTTP_HOST: '' });
    groups.push(iso.config.kafkaGroupId);
    expect((await runCli(['migrate'], iso.env)).code).toBe(0);
    for (const command of ['producer', 'consumer', 'run'] as const) start([command], iso.env);
    for (const command of ['producer', 'consumer', 'run'] as const) {
      const port = DEFAULT_HTTP_PORTS[command];
      const r = await waitFor(`${command} ready on 127.0.0.1:${port}`, async () => {
        const x = await readyz('127.0.0.1', port);
        return x?.status === 200 ? x : undefined;
      });
      expect(r.body).toEqual({ ready: true, notReady: [] });
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(new RegExp(`^streamer_info\\{command="${command}",version="[^"]+"\\} 1$`, 'm'));
    }
    // All three are one pipeline: two producers, two consumers in one group; each row once.
    await insert(iso, 20);
    await waitFor('20 rows in ClickHouse', async () => ((await clickhouseIds(iso)).length >= 20 ? true : undefined));
    await waitFor('the group to commit everything', async () => {
      const s = JSON.parse((await runCli(['status', '--json'], iso.env)).stdout);
      return s.kafka.totalLag === 0 && s.postgres.pending === 0 ? true : undefined;
    });
    expect(await clickhouseIds(iso)).toEqual(range(1, 20));

    // The default address is this host only.
    expect(await readyz('127.0.0.2', DEFAULT_HTTP_PORTS.producer)).toBeUndefined();

    const second = await runCli(['producer'], iso.env);
    expect(second.code).toBe(1);
    expect(second.stderr).toBe(
      `streamer: port ${DEFAULT_HTTP_PORTS.producer}, the default health/metrics port of "streamer producer", is already in use on 127.0.0.1 (another "streamer producer" on this host?) — set HTTP_PORT to a free port, or 0 to turn the health/metrics server off\n`,
    );
    const explicit = await runCli(['consumer'], { ...iso.env, HTTP_PORT: String(DEFAULT_HTTP_PORTS.run) });
    expect(explicit.code).toBe(1);
    expect(explicit.stderr).toBe(`streamer: HTTP_PORT=${DEFAULT_HTTP_PORTS.run} is already in use on 127.0.0.1 — set HTTP_PORT to a free port, or 0 to turn the health/metrics server off\n`);
  });

  it('HTTP_HOST=0.0.0.0 serves on every address (as in a container)', async () => {
    const iso = await fresh({});
    expect((await runCli(['migrate'], iso.env)).code).toBe(0);
    const port = await freePort();
    start(['producer'], { ...iso.env, HTTP_HOST: '0.0.0.0', HTTP_PORT: String(port) });
    // 127.0.0.2 is this host too, but not the address 127.0.0.1 a default server listens on.
    const r = await waitFor('ready on 127.0.0.2', async () => {
      const x = await readyz('127.0.0.2', port);
      return x?.status === 200 ? x : undefined;
    });
    expect(r.body.ready).toBe(true);
  });
});

describe('the default consumer group', () => {
  it('is per pipeline, and starts where an earlier default group left off instead of re-reading', async () => {
    const iso = await fresh({ KAFKA_GROUP_ID: '', HTTP_PORT: '0', LOG_LEVEL: 'info' });
    const db = iso.config.clickhouseDatabase;
    const topic = iso.config.kafkaTopic;
    const group1 = `${LEGACY_GROUP_ID}.${new URL(iso.config.clickhouseUrl).host}.${db}.${topic}`;
    expect(iso.config.kafkaGroupId).toBe(group1);
    groups.push(group1);
    expect((await runCli(['migrate'], iso.env)).code).toBe(0);

    // An f141f4e-era deployment: its consumer, in the old default group, stored rows 1–10 and
    // committed them.
    await insert(iso, 10);
    expect((await runCli(['producer', '--sweep'], iso.env)).code).toBe(0);
    const admin = new Kafka({ brokers: iso.config.kafkaBrokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const high = (await admin.fetchTopicOffsets(topic)).map((p) => ({ partition: p.partition, offset: p.high }));
      await admin.setOffsets({ groupId: LEGACY_GROUP_ID, topic, partitions: high });
    } finally {
      await admin.disconnect();
    }

    // Upgraded: rows 11–15 arrive; the new default group must not read 1–10 again.
    await insert(iso, 5);
    expect((await runCli(['producer', '--sweep'], iso.env)).code).toBe(0);
    let consumer = start(['consumer'], iso.env);
    await waitFor('rows 11–15 and lag 0', async () => {
      const s = JSON.parse((await runCli(['status', '--json'], iso.env)).stdout);
      return s.kafka.totalLag === 0 && (await clickhouseIds(iso)).length >= 5 ? true : undefined;
    });
    expect(await clickhouseIds(iso)).toEqual(range(11, 15));
    expect(consumer.output()).toContain(`consumer group ${group1} had no committed offsets for topic ${topic}: it starts where ${LEGACY_GROUP_ID} left off`);
    await stopAll();

    // A second table joins the pipeline: another default group name, which continues the first
    // one's offsets of user_login's topic and reads the new topic from its beginning.
    await withPg(iso.config, (c) => c.query('CREATE TABLE shipments (id int PRIMARY KEY, place text)'));
    const file = path.join(tmpdir(), `streamer-ops-${db}.json`);
    writeFileSync(file, JSON.stringify({ tables: { 'public.user_login': { topic }, 'public.shipments': { topic: `${topic}_shipments` } } }));
    const env2 = { ...iso.env, KAFKA_TOPIC: '', STREAMER_TABLES: 'public.user_login,public.shipments', STREAMER_CONFIG: file };
    const group2 = `${LEGACY_GROUP_ID}.${new URL(iso.config.clickhouseUrl).host}.${db}.${topic}+${topic}_shipments`;
    groups.push(group2);
    expect((await runCli(['migrate'], env2)).code).toBe(0);
    await insert(iso, 3);
    await withPg(iso.config, (c) => c.query(`INSERT INTO shipments VALUES (1, 'Lisbon'), (2, 'Oslo')`));
    expect((await runCli(['producer', '--sweep'], env2)).code).toBe(0);
    consumer = start(['consumer'], env2);
    await waitFor('rows 16–18 and both shipments', async () => {
      const s = JSON.parse((await runCli(['status', '--json'], env2)).stdout);
      return s.kafka.totalLag === 0 && (await clickhouseIds(iso)).length >= 8 && (await clickhouseIds(iso, 'shipments')).length >= 2 ? s : undefined;
    });
    expect(await clickhouseIds(iso)).toEqual(range(11, 18));
    expect(await clickhouseIds(iso, 'shipments')).toEqual([1, 2]);
    const status = JSON.parse((await runCli(['status', '--json'], env2)).stdout);
    expect(status.tables.map((t: { kafka: { group: string } }) => t.kafka.group)).toEqual([group2, group2]);
    expect(consumer.output()).toContain(`consumer group ${group2} had no committed offsets for topic ${topic}: it starts where ${group1} left off`);
  });
});

describe('a consumer group shared by two pipelines (KAFKA_GROUP_ID set to the same name)', () => {
  it('the member given partitions of the other pipeline\'s topic stops with one line naming the group', async () => {
    const group = `streamer_shared_${Date.now()}`;
    groups.push(group);
    const a = await fresh({ KAFKA_GROUP_ID: group, HTTP_PORT: '0' });
    const b = await fresh({ KAFKA_GROUP_ID: group, HTTP_PORT: '0' });
    for (const iso of [a, b]) expect((await runCli(['migrate'], iso.env)).code).toBe(0);
    // Three partitions each, whatever the broker's default: kafkajs's round robin over the sorted
    // partitions of both topics then gives each of two members partitions of both.
    const admin = new Kafka({ brokers: a.config.kafkaBrokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      await admin.createTopics({ topics: [a, b].map((i) => ({ topic: i.config.kafkaTopic, numPartitions: 3 })), waitForLeaders: true });
    } finally {
      await admin.disconnect();
    }
    const consumers = [start(['consumer'], a.env), start(['consumer'], b.env)];
    // kafkajs's assigner spreads the six partitions of both topics over both members: at least
    // one member is handed partitions of the other's topic (which kafkajs would drop, unread), and stops.
    const exited = await Promise.race(consumers.map((c, i) => c.exited.then((code) => ({ code, c, other: i === 0 ? b : a }))));
    expect(exited.code).toBe(1);
    expect(exited.c.output()).toContain(
      `streamer: Kafka gave this consumer partitions of ${exited.other.config.kafkaTopic}, which it does not read: consumer group ${group} is shared with a consumer of other topics, whose partitions would go unread — give each pipeline its own KAFKA_GROUP_ID, or leave it unset (the default is one group per pipeline)`,
    );
  });
});
