// The lag gauge's kept connection and the takeover of earlier default groups' offsets, against
// fake admin clients (the real ones: test/integration/operations.test.ts).
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/common/logger.js';
import { takeOverEarlierOffsets, type OffsetsAdmin } from '../../src/kafka/group-offsets.js';
import { LagMonitor, type LagAdmin } from '../../src/ops/status.js';

const config = loadConfig({ KAFKA_TOPIC: 't' });
const log = createLogger({ level: 'silent', secrets: [] });

function fakeLagAdmin(counts: { connects: number; reads: number; disconnects: number }, behaviour: { fail?: boolean; hang?: boolean } = {}) {
  counts.connects++;
  const admin: LagAdmin = {
    listTopics: async () => {
      counts.reads++;
      if (behaviour.hang) await new Promise(() => {});
      if (behaviour.fail) throw new Error('broker gone');
      return ['t'];
    },
    fetchTopicOffsets: async () => [{ partition: 0, offset: '10', high: '10', low: '0' }],
    fetchOffsets: async () => [{ topic: 't', partitions: [{ partition: 0, offset: '4', metadata: null }] }],
    disconnect: async () => {
      counts.disconnects++;
    },
  };
  return admin;
}

describe('LagMonitor (the consumer lag gauge)', () => {
  it('keeps one connection across scrapes and reads the lag each time', async () => {
    const counts = { connects: 0, reads: 0, disconnects: 0 };
    const m = new LagMonitor(config, async () => fakeLagAdmin(counts), { maxAgeMs: 0, timeoutMs: 1000 });
    for (let i = 0; i < 5; i++) expect((await m.read())[0]?.totalLag).toBe(6);
    expect(counts).toEqual({ connects: 1, reads: 5, disconnects: 0 });
    await m.close();
    expect(counts.disconnects).toBe(1);
    await expect(m.read()).rejects.toThrow(/closed/);
  });

  it('scrapes arriving together share one read; a fresh read is reused', async () => {
    const counts = { connects: 0, reads: 0, disconnects: 0 };
    const m = new LagMonitor(config, async () => fakeLagAdmin(counts), { maxAgeMs: 60_000, timeoutMs: 1000 });
    await Promise.all([m.read(), m.read(), m.read()]);
    await m.read();
    expect(counts.reads).toBe(1);
    await m.close();
  });

  it('after a failure the connection is dropped and the next scrape makes a new one', async () => {
    const counts = { connects: 0, reads: 0, disconnects: 0 };
    let fail = true;
    const m = new LagMonitor(config, async () => fakeLagAdmin(counts, { fail }), { maxAgeMs: 0, timeoutMs: 1000 });
    await expect(m.read()).rejects.toThrow('broker gone');
    fail = false;
    expect((await m.read())[0]?.totalLag).toBe(6);
    expect(counts).toEqual({ connects: 2, reads: 2, disconnects: 1 });
    await m.close();
  });

  it('a read that does not answer fails after the timeout, naming Kafka', async () => {
    const counts = { connects: 0, reads: 0, disconnects: 0 };
    const m = new LagMonitor(config, async () => fakeLagAdmin(counts, { hang: true }), { maxAgeMs: 0, timeoutMs: 20 });
    await expect(m.read()).rejects.toThrow('Kafka at 127.0.0.1:9092 did not answer the lag read within 20 ms');
    expect(counts.disconnects).toBe(1);
    await m.close();
  });
});

/** Groups → topic → partition → committed offset ('-1': none). */
function fakeOffsetsAdmin(committed: Record<string, Record<string, Record<number, string>>>, partitions: Record<string, number[]>, opts: { refuseSet?: boolean } = {}) {
  const sets: Array<{ groupId: string; topic: string; partitions: Array<{ partition: number; offset: string }> }> = [];
  const admin: OffsetsAdmin = {
    listGroups: async () => ({ groups: Object.keys(committed).map((groupId) => ({ groupId, protocolType: 'consumer' })) }),
    fetchOffsets: (async ({ groupId, topics }: { groupId: string; topics: string[] }) =>
      topics.map((topic) => ({
        topic,
        partitions: (partitions[topic] ?? []).map((partition) => ({ partition, offset: committed[groupId]?.[topic]?.[partition] ?? '-1', metadata: null })),
      }))) as unknown as OffsetsAdmin['fetchOffsets'],
    setOffsets: async (x) => {
      if (opts.refuseSet) throw new Error('The consumer group must have no running instances, current state: Stable');
      sets.push(x as (typeof sets)[number]);
    },
  };
  return { admin, sets };
}

describe('takeOverEarlierOffsets', () => {
  const url = 'http://127.0.0.1:8123';
  const own = 'streamer-clickhouse.127.0.0.1:8123.db.a+b';
  const target = { groupId: own, clickhouseUrl: url, database: 'db', topics: ['a', 'b'] };

  it('takes the furthest offset of the earlier default groups for the partitions the group never committed', async () => {
    const { admin, sets } = fakeOffsetsAdmin(
      {
        [own]: { a: { 0: '7' } },
        'streamer-clickhouse': { a: { 0: '3', 1: '5' }, b: { 0: '2' } },
        'streamer-clickhouse.127.0.0.1:8123.db.a': { a: { 1: '9' } },
        'streamer-clickhouse.127.0.0.1:8123.other.a': { a: { 1: '99' } }, // another database: not taken
        'unrelated-app': { a: { 1: '1000' } },
      },
      { a: [0, 1], b: [0] },
    );
    const r = await takeOverEarlierOffsets(admin, target, log);
    expect(sets).toEqual([
      { groupId: own, topic: 'a', partitions: [{ partition: 1, offset: '9' }] }, // partition 0: its own commit stays
      { groupId: own, topic: 'b', partitions: [{ partition: 0, offset: '2' }] },
    ]);
    expect(r.takenOver.map((t) => [t.topic, t.from])).toEqual([
      ['a', ['streamer-clickhouse.127.0.0.1:8123.db.a']],
      ['b', ['streamer-clickhouse']],
    ]);
    expect(r.othersWithOffsets).toEqual([]);
  });

  it('changes nothing when the group has committed every partition', async () => {
    const { admin, sets } = fakeOffsetsAdmin({ [own]: { a: { 0: '1' }, b: { 0: '1' } }, 'streamer-clickhouse': { a: { 0: '5' } } }, { a: [0], b: [0] });
    expect(await takeOverEarlierOffsets(admin, target, log)).toEqual({ takenOver: [], othersWithOffsets: [] });
    expect(sets).toEqual([]);
  });

  it('names the other streamer groups that read a topic it must read from the beginning', async () => {
    const { admin, sets } = fakeOffsetsAdmin({ 'streamer-clickhouse.localhost:8123.db.a': { a: { 0: '4' } } }, { a: [0], b: [0] });
    const r = await takeOverEarlierOffsets(admin, target, log);
    expect(sets).toEqual([]);
    expect(r.othersWithOffsets).toEqual([{ topic: 'a', groups: ['streamer-clickhouse.localhost:8123.db.a'] }]);
  });

  it('goes on when a member joined first (setOffsets refused)', async () => {
    const { admin } = fakeOffsetsAdmin({ 'streamer-clickhouse': { a: { 0: '4' } } }, { a: [0], b: [0] }, { refuseSet: true });
    expect((await takeOverEarlierOffsets(admin, target, log)).takenOver).toEqual([]);
  });
});
