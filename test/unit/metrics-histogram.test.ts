// The consumer's latency histogram takes a value with a count (one call per run of messages that
// share a claim time) instead of prom-client's one call per message (issue 14). A scrape must not
// tell the difference: the same lines as a prom-client Histogram given each observation one by one.
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CLAIM_TO_CLICKHOUSE_BUCKETS, CountingHistogram } from '../../src/ops/metrics.js';

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** The exposition's lines, the `_sum` line's value apart (added in another order, it may differ in its last bits). */
function lines(text: string): { rest: string[]; sum: number } {
  const all = text.trim().split('\n');
  const sumLine = all.find((l) => l.startsWith('h_sum ')) ?? '';
  return { rest: all.filter((l) => l !== sumLine), sum: Number(sumLine.split(' ')[1]) };
}

describe('CountingHistogram', () => {
  it('exposes what prom-client Histogram does for the same observations, bounds and +Inf included', async () => {
    const ours = new client.Registry();
    const theirs = new client.Registry();
    const counting = new CountingHistogram('h', 'help text', CLAIM_TO_CLICKHOUSE_BUCKETS, ours);
    const reference = new client.Histogram({ name: 'h', help: 'help text', buckets: CLAIM_TO_CLICKHOUSE_BUCKETS, registers: [theirs] });
    // An empty histogram first: every bucket at 0.
    expect(await ours.metrics()).toBe(await theirs.metrics());
    const rand = rng(20261127);
    // Values on every bound (a bound is inclusive), between them, below the first and above the last.
    const values = [0, 0.001, ...CLAIM_TO_CLICKHOUSE_BUCKETS, ...CLAIM_TO_CLICKHOUSE_BUCKETS.map((b) => b * 1.5), 61, 3600];
    let observations = 0;
    for (let k = 0; k < 500; k++) {
      const value = values[Math.floor(rand() * values.length)] as number;
      const times = 1 + Math.floor(rand() * 40);
      counting.observe(value, times);
      for (let t = 0; t < times; t++) reference.observe(value);
      observations += times;
    }
    const a = lines(await ours.metrics());
    const b = lines(await theirs.metrics());
    expect(a.rest).toEqual(b.rest);
    expect(a.rest).toContain(`h_count ${observations}`);
    expect(a.sum).toBeCloseTo(b.sum, 6);
    // reset() (Registry.resetMetrics) zeroes it: an empty histogram again. (prom-client's own
    // reset() drops an unlabelled histogram's lines until its next observation.)
    counting.reset();
    const fresh = new client.Registry();
    new client.Histogram({ name: 'h', help: 'help text', buckets: CLAIM_TO_CLICKHOUSE_BUCKETS, registers: [fresh] });
    expect(await ours.metrics()).toBe(await fresh.metrics());
  });
});
