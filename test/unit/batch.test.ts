import { describe, expect, it } from 'vitest';
import { BatchBuffer, CommitQueue, nextOffsets, offsetAbove, partitionKey, type TopicOffset } from '../../src/sink/batch.js';
import { insertQueryId } from '../../src/sink/sink.js';

const msgs = (partition: number, from: number, n: number) => Array.from({ length: n }, (_, i) => ({ topic: 't', partition, offset: String(from + i) }));
const tp = (partition: number, offset: string, topic = 't') => [partitionKey({ topic, partition }), { topic, partition, offset }] as const;

describe('BatchBuffer: flush at maxRows or when the first row has waited flushMs', () => {
  it('is due flushMs after its first row, not after its last', () => {
    let now = 1000;
    const b = new BatchBuffer(100, 50, () => now);
    expect(b.dueIn()).toBe(Infinity);
    b.add(msgs(0, 0, 1));
    expect(b.dueIn()).toBe(50);
    now += 30;
    b.add(msgs(0, 1, 1));
    expect(b.dueIn()).toBe(20);
    now += 25;
    expect(b.dueIn()).toBe(0);
    expect(b.take()).toEqual(msgs(0, 0, 2));
    expect(b.dueIn()).toBe(Infinity);
  });

  it('is due at once when full, and hands out at most maxRows; the rest keeps the deadline of the oldest row', () => {
    let now = 0;
    const b = new BatchBuffer(3, 1000, () => now);
    b.add(msgs(0, 0, 5));
    expect(b.full()).toBe(true);
    expect(b.dueIn()).toBe(0);
    expect(b.take()).toEqual(msgs(0, 0, 3));
    expect(b.size).toBe(2);
    expect(b.full()).toBe(false);
    expect(b.dueIn()).toBe(1000); // the rows left were added with the first: same deadline
    now = 400;
    expect(b.dueIn()).toBe(600);
  });

  it('flushMs 0 means every add is due at once', () => {
    const b = new BatchBuffer(10, 0, () => 5);
    b.add(msgs(1, 0, 1));
    expect(b.dueIn()).toBe(0);
  });

  it("keeps every message it is given, in order: offsets that go back are the runner's business (issue 9, finding 5)", () => {
    const b = new BatchBuffer(100, 50, () => 0);
    b.add([...msgs(0, 0, 3), ...msgs(1, 10, 2)]);
    b.take();
    b.add(msgs(0, 0, 2)); // a re-created topic starts again at 0
    expect(b.take()).toEqual(msgs(0, 0, 2));
  });

  it('removes the messages of a partition given up, keeping the others in order', () => {
    const b = new BatchBuffer<{ topic: string; partition: number; offset: string }>(100, 50, () => 0);
    b.add([...msgs(0, 0, 2), ...msgs(1, 5, 2), ...msgs(0, 2, 1)]);
    expect(b.remove((m) => m.partition === 0)).toBe(3);
    expect(b.drain()).toEqual(msgs(1, 5, 2));
    expect(b.size).toBe(0);
  });
});

describe('nextOffsets', () => {
  it('commits, per partition, the last offset + 1', () => {
    expect(nextOffsets([...msgs(0, 5, 3), ...msgs(2, 9_007_199_254_740_990, 3), ...msgs(0, 2, 1), { topic: 'u', partition: 0, offset: '1' }])).toEqual(
      new Map([tp(0, '8'), tp(2, '9007199254740993'), tp(0, '2', 'u')]),
    );
  });

  it('compares offsets as numbers, not as text: 10 is above 9, 100 above 99', () => {
    expect(nextOffsets([...msgs(0, 9, 1), ...msgs(0, 10, 1)]).get(partitionKey({ topic: 't', partition: 0 }))?.offset).toBe('11');
    expect(nextOffsets([...msgs(0, 100, 1), ...msgs(0, 99, 1)]).get(partitionKey({ topic: 't', partition: 0 }))?.offset).toBe('101');
    expect(offsetAbove('10', '9')).toBe(true);
    expect(offsetAbove('9', '10')).toBe(false);
    expect(offsetAbove('12', '12')).toBe(false);
  });
});

describe('insertQueryId: the same for every attempt of a batch, another for another batch', () => {
  const inputs = (offsets: Array<[number, number]>) => offsets.map(([partition, o]) => ({ topic: 't', partition, offset: String(o) }));
  const batch = inputs([[0, 5], [0, 6], [0, 7], [1, 100], [1, 101]]);
  it('is stable', () => {
    expect(insertQueryId('user_login', batch)).toBe(insertQueryId('user_login', inputs([[0, 5], [0, 6], [0, 7], [1, 100], [1, 101]])));
    expect(insertQueryId('user_login', batch)).toMatch(/^streamer-insert-[0-9a-f]{32}$/);
  });
  it('changes with any offset, partition, topic, table or part', () => {
    const id = insertQueryId('user_login', batch);
    const others = [
      insertQueryId('user_login', inputs([[0, 5], [0, 6], [0, 8], [1, 100], [1, 101]])),
      insertQueryId('user_login', inputs([[0, 5], [0, 7], [1, 100], [1, 101]])),
      insertQueryId('user_login', inputs([[0, 5], [0, 6], [0, 7], [2, 100], [2, 101]])),
      insertQueryId('user_login', inputs([[0, 5], [0, 6], [0, 7], [1, 100]])),
      insertQueryId('orders', batch),
      insertQueryId('user_login', batch.map((i) => ({ ...i, topic: 'u' }))),
      insertQueryId('user_login', batch, '-a'),
    ];
    for (const o of others) expect(o).not.toBe(id);
    expect(new Set(others).size).toBe(others.length);
  });
});

describe('CommitQueue: commits off the insert path, merged, one at a time, never backwards', () => {
  /** A fake commit that records its calls and resolves (or fails) when the test says so. */
  function fakeCommit() {
    const calls: { offsets: Record<number, string>; settle: (err?: Error) => void }[] = [];
    const commit = (offsets: TopicOffset[]) =>
      new Promise<void>((resolve, reject) => {
        calls.push({ offsets: Object.fromEntries(offsets.map((o) => [o.partition, o.offset])), settle: (err) => (err ? reject(err) : resolve()) });
      });
    return { calls, commit };
  }
  const tick = () => new Promise((r) => setImmediate(r));

  it('sends the first request at once, and what comes meanwhile as one merged commit after it', async () => {
    const { calls, commit } = fakeCommit();
    const q = new CommitQueue(commit, () => {});
    q.request(new Map([tp(0, '10')]));
    await tick();
    expect(calls.map((c) => c.offsets)).toEqual([{ 0: '10' }]);
    q.request(new Map([tp(0, '15'), tp(1, '4')]));
    q.request(new Map([tp(0, '12'), tp(2, '7')])); // 12 < 15: the higher one wins
    await tick();
    expect(calls).toHaveLength(1); // one commit at a time
    calls[0]!.settle();
    await tick();
    expect(calls.map((c) => c.offsets)).toEqual([{ 0: '10' }, { 0: '15', 1: '4', 2: '7' }]);
    calls[1]!.settle();
    await q.drain();
    expect(calls).toHaveLength(2);
  });

  it('never commits an offset at or below one it already committed', async () => {
    const { calls, commit } = fakeCommit();
    const q = new CommitQueue(commit, () => {});
    q.request(new Map([tp(0, '20')]));
    await tick();
    calls[0]!.settle();
    await q.drain();
    q.request(new Map([tp(0, '20'), tp(1, '3')]));
    await tick();
    calls[1]!.settle();
    await q.drain();
    expect(calls.map((c) => c.offsets)).toEqual([{ 0: '20' }, { 1: '3' }]);
  });

  it('reports a failed commit, keeps going, and commits that partition again with the next offset', async () => {
    const { calls, commit } = fakeCommit();
    const errors: unknown[] = [];
    const q = new CommitQueue(commit, (err) => errors.push(err));
    q.request(new Map([tp(0, '5')]));
    await tick();
    calls[0]!.settle(new Error('REBALANCE_IN_PROGRESS'));
    await q.drain();
    expect(errors.map((e) => (e as Error).message)).toEqual(['REBALANCE_IN_PROGRESS']);
    q.request(new Map([tp(0, '5')])); // not committed before: sent again
    await tick();
    calls[1]!.settle();
    await q.drain();
    expect(calls.map((c) => c.offsets)).toEqual([{ 0: '5' }, { 0: '5' }]);
  });

  it('drain waits for the commit in flight and for what was queued behind it', async () => {
    const { calls, commit } = fakeCommit();
    const q = new CommitQueue(commit, () => {});
    q.request(new Map([tp(0, '1')]));
    await tick();
    q.request(new Map([tp(0, '2')]));
    let drained = false;
    const d = q.drain().then(() => (drained = true));
    calls[0]!.settle();
    await tick();
    expect(drained).toBe(false);
    calls[1]!.settle();
    await d;
    expect(calls.map((c) => c.offsets)).toEqual([{ 0: '1' }, { 0: '2' }]);
  });
});

describe('CommitQueue: reset and forget', () => {
  const tick = () => new Promise((r) => setImmediate(r));
  it('after reset, commits a lower offset (a re-created topic); forget drops requests of partitions no longer ours', async () => {
    const sent: Array<Record<string, string>> = [];
    const q = new CommitQueue(async (offsets) => void sent.push(Object.fromEntries(offsets.map((o) => [`${o.topic}/${o.partition}`, o.offset]))), () => {});
    q.request(new Map([tp(0, '300')]));
    await q.drain();
    expect(q.committedOffset(partitionKey({ topic: 't', partition: 0 }))).toBe(300n);
    q.request(new Map([tp(0, '50')]));
    await q.drain();
    expect(sent).toEqual([{ 't/0': '300' }]); // never backwards on its own
    q.reset(partitionKey({ topic: 't', partition: 0 }));
    q.request(new Map([tp(0, '50')]));
    await q.drain();
    expect(sent).toEqual([{ 't/0': '300' }, { 't/0': '50' }]);
    // A request queued behind a commit in flight, for a partition the member then loses:
    let release!: () => void;
    const slow = new CommitQueue(async (offsets) => {
      sent.push(Object.fromEntries(offsets.map((o) => [`${o.topic}/${o.partition}`, o.offset])));
      await new Promise<void>((r) => (release = r));
    }, () => {});
    slow.request(new Map([tp(1, '7')]));
    await tick();
    slow.request(new Map([tp(1, '9'), tp(2, '4')]));
    slow.forget((key) => key !== partitionKey({ topic: 't', partition: 1 }));
    release();
    await tick();
    release();
    await slow.drain();
    expect(sent.slice(2)).toEqual([{ 't/1': '7' }, { 't/2': '4' }]);
  });
});
