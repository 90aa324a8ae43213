import { describe, expect, it } from 'vitest';
import { BatchBuffer, nextOffsets } from '../../src/batch.js';

const msgs = (partition: number, from: number, n: number) => Array.from({ length: n }, (_, i) => ({ partition, offset: String(from + i) }));

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

  it('ignores messages re-fetched after a rebalance (at or below the last offset taken in per partition)', () => {
    const b = new BatchBuffer(100, 50, () => 0);
    expect(b.add([...msgs(0, 0, 3), ...msgs(1, 10, 2)])).toBe(5);
    b.take();
    expect(b.add([...msgs(0, 1, 4), ...msgs(1, 11, 2)])).toBe(3);
    expect(b.take()).toEqual([...msgs(0, 3, 2), { partition: 1, offset: '12' }]);
  });
});

describe('nextOffsets', () => {
  it('commits, per partition, the last offset + 1', () => {
    expect(nextOffsets([...msgs(0, 5, 3), ...msgs(2, 9_007_199_254_740_990, 3), ...msgs(0, 2, 1)])).toEqual(
      new Map([
        [0, '8'],
        [2, '9007199254740993'],
      ]),
    );
  });
});
