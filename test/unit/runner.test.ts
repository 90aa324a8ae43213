// The consumer's runner with a fake store and a fake commit: its stop, back-pressure, rebalance and
// failure paths, driven step by step (kafkajs tests its runner.js the same way). The same sequences
// run against the real services in test/integration/consumer-*.test.ts.
import { describe, expect, it } from 'vitest';
import type { TopicOffset } from '../../src/sink/batch.js';
import { StreamerError, UnreachableError } from '../../src/common/errors.js';
import { createLogger } from '../../src/common/logger.js';
import { ConsumerRunner } from '../../src/sink/runner.js';

interface Msg {
  topic: string;
  partition: number;
  offset: string;
  id: number;
}
const msgs = (partition: number, from: number, n: number, topic = 't'): Msg[] =>
  Array.from({ length: n }, (_, i) => ({ topic, partition, offset: String(from + i), id: partition * 1000 + from + i }));

const tick = () => new Promise((r) => setImmediate(r));
const until = async (what: string, cond: () => boolean, ticks = 2000) => {
  for (let i = 0; i < ticks; i++) {
    if (cond()) return;
    await tick();
  }
  throw new Error(`never: ${what}`);
};

/** A store the test answers attempt by attempt, and a commit that records. */
function harness(opts: { maxRows?: number; flushMs?: number; sleep?: (ms: number, signal: AbortSignal) => Promise<void> } = {}) {
  const attempts: Array<{ batch: Msg[]; settle: (err?: Error) => void }> = [];
  const stored: Msg[] = [];
  const commits: Array<Record<string, string>> = [];
  const lines: string[] = [];
  const runner = new ConsumerRunner<Msg>(
    {
      store: (batch) =>
        new Promise<void>((resolve, reject) => {
          attempts.push({
            batch,
            settle: (err) => {
              if (err) return reject(err);
              stored.push(...batch);
              resolve();
            },
          });
        }),
      commit: async (offsets: TopicOffset[]) => void commits.push(Object.fromEntries(offsets.map((o) => [`${o.topic}/${o.partition}`, o.offset]))),
    },
    {
      maxRows: opts.maxRows ?? 100,
      flushMs: opts.flushMs ?? 0,
      retryMaxDelayMs: 1,
      log: createLogger({ level: 'info', pretty: false, destination: { write: (l: string) => void lines.push(l) } }),
      sleep: opts.sleep ?? (async () => {}),
      beatEveryMs: 5,
    },
  );
  let answered = 0;
  /** Answers the next unanswered store attempt. */
  const answer = async (err?: Error) => {
    await until('a store attempt', () => attempts.length > answered);
    const a = attempts[answered++]!;
    a.settle(err);
    await tick();
    return a.batch;
  };
  /** Fails attempts with `err` until `cond` holds (each attempt answered as it comes). */
  const failUntil = async (err: Error, cond: () => boolean) => {
    for (let i = 0; i < 200 && !cond(); i++) {
      if (attempts.length > answered) await answer(err);
      else await new Promise((r) => setTimeout(r, 1));
    }
    if (!cond()) throw new Error('never: the condition while failing attempts');
  };
  return { runner, attempts, stored, commits, lines, answer, failUntil };
}

const down = () => new UnreachableError('ClickHouse at http://x is not reachable (timeout)');
const okBeat = async () => {};

describe('ConsumerRunner', () => {
  it('stores a batch, then commits its next offsets; handle resolves only once stored', async () => {
    const h = harness();
    let resolved = false;
    const call = h.runner.handle(msgs(0, 0, 3), okBeat).then(() => (resolved = true));
    await tick();
    expect(resolved).toBe(false);
    expect((await h.answer()).map((m) => m.offset)).toEqual(['0', '1', '2']);
    await call;
    await until('the commit', () => h.commits.length === 1);
    expect(h.commits).toEqual([{ 't/0': '3' }]);
    await h.runner.stop();
  });

  it('finding 1: a batch given up while stopping ends the flushing; nothing after it is stored or committed', async () => {
    const h = harness({ maxRows: 5 });
    const call = h.runner.handle(msgs(0, 0, 10), okBeat); // batch A = 0–4, batch B = 5–9
    const a1 = await h.answer(down()); // A fails …
    expect(a1.map((m) => m.offset)).toEqual(['0', '1', '2', '3', '4']);
    const stopping = h.runner.stop(); // … SIGTERM …
    const a2 = await h.answer(down()); // … and its last attempt fails: A is given up
    expect(a2).toEqual(a1);
    await stopping;
    await call;
    expect(h.attempts).toHaveLength(2); // B was never even tried
    expect(h.stored).toEqual([]);
    expect(h.commits).toEqual([]);
    expect(h.lines.join('')).toMatch(/stopping with a batch not stored: neither it nor anything after it is committed/);
  });

  it('finding 1, the other way: the batch in flight stored at stop is committed before stop resolves', async () => {
    const h = harness({ maxRows: 5 });
    const call = h.runner.handle(msgs(0, 0, 10), okBeat);
    await h.answer(down());
    const stopping = h.runner.stop();
    await h.answer(); // A stored on its last attempt
    await h.answer(); // B too: stop stores what was taken in
    await stopping;
    await call;
    expect(h.stored.map((m) => m.offset)).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(h.commits.at(-1)).toEqual({ 't/0': '10' });
  });

  it('back-pressure: a full buffer takes no more until a batch is taken', async () => {
    const h = harness({ maxRows: 2 });
    const first = h.runner.handle(msgs(0, 0, 2), okBeat);
    await until('the first attempt', () => h.attempts.length === 1);
    const second = h.runner.handle(msgs(1, 0, 2), okBeat); // buffer has room: the first batch was taken
    const third = h.runner.handle(msgs(2, 0, 2), okBeat); // buffer full (partition 1's two): waits
    await tick();
    await h.answer();
    await first;
    await h.answer();
    await second;
    await h.answer();
    await third;
    expect(h.stored.map((m) => `${m.partition}:${m.offset}`)).toEqual(['0:0', '0:1', '1:0', '1:1', '2:0', '2:1']);
    await h.runner.stop();
  });

  it('finding 4: when the heartbeat says the group rebalances, the partition is given up — not stored later — and handle throws', async () => {
    const h = harness();
    const rebalancing = Object.assign(new Error('The group is rebalancing'), { type: 'REBALANCE_IN_PROGRESS' });
    let beats = 0;
    const beat = async () => {
      beats++;
      if (beats >= 2) throw rebalancing;
    };
    const p0 = h.runner.handle(msgs(0, 0, 3), beat);
    const p1 = h.runner.handle(msgs(1, 0, 2), okBeat);
    let p0Settled = false;
    const p0Rejected = expect(p0.finally(() => (p0Settled = true))).rejects.toBe(rebalancing);
    // ClickHouse down: both partitions wait; partition 0's heartbeat reports the rebalance.
    await h.failUntil(down(), () => p0Settled);
    await p0Rejected;
    // The next attempt goes without partition 0.
    const next = await h.answer();
    expect(next.map((m) => `${m.partition}:${m.offset}`)).toEqual(['1:0', '1:1']);
    await p1;
    await until('the commit', () => h.commits.length > 0);
    expect(h.commits).toEqual([{ 't/1': '2' }]);
    expect(h.stored.some((m) => m.partition === 0)).toBe(false);
    await h.runner.stop();
  });

  it('finding 4: an attempt in flight when the rebalance comes is waited for; if it stored the rows, handle returns normally', async () => {
    const h = harness();
    const rebalancing = Object.assign(new Error('rebalancing'), { type: 'REBALANCE_IN_PROGRESS' });
    const call = h.runner.handle(msgs(0, 0, 2), async () => {
      throw rebalancing;
    });
    await until('the attempt', () => h.attempts.length === 1);
    for (let i = 0; i < 20; i++) await tick(); // the heartbeat fails meanwhile; the attempt is in flight
    await h.answer(); // and stores
    await call;
    expect(h.stored).toHaveLength(2);
    await h.runner.stop();
  });

  it('finding 4: the same partition handed back after a rebalance is stored from what kafkajs sends again', async () => {
    const h = harness();
    const rebalancing = Object.assign(new Error('rebalancing'), { type: 'ILLEGAL_GENERATION' });
    let lost = true;
    const first = h.runner.handle(msgs(0, 0, 3), async () => {
      if (lost) throw rebalancing;
    });
    let settled = false;
    const rejected = expect(first.finally(() => (settled = true))).rejects.toBe(rebalancing);
    await h.failUntil(down(), () => settled);
    await rejected;
    lost = false;
    const again = h.runner.handle(msgs(0, 0, 3), okBeat); // kafkajs re-fetches from the last commit
    const batch = await h.answer();
    expect(batch.map((m) => m.offset)).toEqual(['0', '1', '2']);
    await again;
    await h.runner.stop();
  });

  it('finding 4: handed back while the given-up batch still waits out its backoff, the partition is taken in again and stored', async () => {
    // Found with three real consumers under load: the old batch's messages still counted as held,
    // so the new delivery was filtered out as a duplicate and its handle waited forever.
    let wake!: () => void;
    const backoff = () => new Promise<void>((r) => (wake = r));
    const h = harness({ sleep: backoff });
    const rebalancing = Object.assign(new Error('rebalancing'), { type: 'REBALANCE_IN_PROGRESS' });
    let lost = true;
    const first = h.runner.handle(msgs(0, 0, 3), async () => {
      if (lost) throw rebalancing;
    });
    const rejected = expect(first).rejects.toBe(rebalancing);
    await h.answer(down()); // fails; the flusher now sleeps in its backoff with the batch
    await rejected; // given up meanwhile
    lost = false;
    const again = h.runner.handle(msgs(0, 0, 3), okBeat); // handed back: kafkajs sends them again
    await tick();
    wake(); // the old batch's next attempt: without the given-up messages, so it is dropped
    const batch = await h.answer();
    expect(batch.map((m) => m.offset)).toEqual(['0', '1', '2']);
    await again;
    expect(h.stored).toHaveLength(3);
    await h.runner.stop();
  });

  it('finding 5: offsets that go back below what was committed are stored, logged, and committed lower', async () => {
    const h = harness();
    const a = h.runner.handle(msgs(0, 0, 300), okBeat);
    for (let i = 0; i < 3; i++) await h.answer(); // three batches of 100
    await a;
    await until('the commit of 300', () => h.commits.at(-1)?.['t/0'] === '300');
    const b = h.runner.handle(msgs(0, 0, 50), okBeat); // the topic was re-created
    const batch = await h.answer();
    expect(batch).toHaveLength(50);
    await b;
    await until('the lower commit', () => h.commits.at(-1)?.['t/0'] === '50');
    expect(h.commits.at(-1)).toEqual({ 't/0': '50' });
    expect(h.lines.join('')).toMatch(/partition 0 of t went back from offset 300 to 0/);
    await h.runner.stop();
  });

  it('finding 9: an error retrying cannot cure ends the runner with it; nothing of the batch is committed', async () => {
    const h = harness();
    const dropped = new StreamerError('ClickHouse table db.user_login does not exist — run "streamer migrate"');
    const call = h.runner.handle(msgs(0, 0, 2), okBeat);
    await h.answer(dropped);
    await call; // returns without storing: the process is about to stop
    await expect(h.runner.done).rejects.toBe(dropped);
    expect(h.attempts).toHaveLength(1);
    expect(h.commits).toEqual([]);
    expect(h.runner.ready).toBe(false);
    await h.runner.stop();
  });

  it('retries a retriable error with backoff until it is stored, and is not ready meanwhile', async () => {
    const h = harness();
    const call = h.runner.handle(msgs(0, 0, 1), okBeat);
    await h.answer(down());
    expect(h.runner.ready).toBe(false);
    await h.answer(down());
    await h.answer();
    await call;
    expect(h.runner.ready).toBe(true);
    expect(h.stored).toHaveLength(1);
    await h.runner.stop();
  });

  it('fail(): an error from outside the batches (topics assigned that this member does not read) ends the runner; the batch waiting is not stored or committed', async () => {
    const h = harness();
    const call = h.runner.handle(msgs(0, 0, 2), okBeat);
    await until('the batch in flight', () => h.attempts.length === 1);
    const shared = new StreamerError('Kafka gave this consumer partitions of other, which it does not read');
    h.runner.fail(shared);
    await h.answer(down()); // the attempt in flight fails; no retry follows
    await call;
    await expect(h.runner.done).rejects.toBe(shared);
    expect(h.attempts).toHaveLength(1);
    expect(h.commits).toEqual([]);
    expect(h.runner.ready).toBe(false);
    await h.runner.stop();
  });
});
