// Issue 9, finding 7 — a Signal wait that timed out stayed in the waiters' list until the next
// notify(): ~483 bytes per wait, a wait every 3 s per blocked partition during an outage (~37 MB
// an hour at 64 partitions). A wait that ends by its timeout now leaves nothing behind.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Signal } from '../../src/sink/batch.js';

afterEach(() => {
  vi.useRealTimers();
});

const waiters = (s: Signal) => s.waiting;

describe('Signal', () => {
  it('an hour of timed-out waits (3 s each, 64 partitions) leaves no waiter behind', async () => {
    vi.useFakeTimers();
    const s = new Signal();
    for (let round = 0; round < 1200; round++) {
      const waits = Array.from({ length: 64 }, () => s.wait(3000));
      await vi.advanceTimersByTimeAsync(3000);
      await Promise.all(waits);
    }
    expect(waiters(s)).toBe(0);
  });

  it('notify wakes every waiter at once and clears them; a later wait waits again', async () => {
    vi.useFakeTimers();
    const s = new Signal();
    let woken = 0;
    const waits = [s.wait(60_000), s.wait(Infinity)].map((p) => p.then(() => woken++));
    expect(waiters(s)).toBe(2);
    s.notify();
    await Promise.all(waits);
    expect(woken).toBe(2);
    expect(waiters(s)).toBe(0);
    let late = false;
    void s.wait(1000).then(() => (late = true));
    await vi.advanceTimersByTimeAsync(999);
    expect(late).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(late).toBe(true);
    expect(waiters(s)).toBe(0);
  });
});
