import { describe, expect, it } from 'vitest';
import { FifoLock } from '../../src/common/fifo-lock.js';

describe('FifoLock', () => {
  it('grants in the order asked, one holder at a time; a second release changes nothing', async () => {
    const lock = new FifoLock();
    const events: string[] = [];
    const hold = async (name: string, work: () => Promise<void>) => {
      const release = await lock.acquire();
      events.push(`${name} in`);
      await work();
      events.push(`${name} out`);
      release();
      release();
    };
    let finishA!: () => void;
    const a = hold('a', () => new Promise<void>((r) => (finishA = r)));
    const b = hold('b', async () => {});
    const c = hold('c', async () => {});
    for (let i = 0; i < 20; i++) await Promise.resolve(); // every queued continuation has run
    expect(events).toEqual(['a in']); // b and c wait for a
    finishA();
    await Promise.all([a, b, c]);
    expect(events).toEqual(['a in', 'a out', 'b in', 'b out', 'c in', 'c out']);
  });
});
