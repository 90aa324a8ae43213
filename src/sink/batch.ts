/**
 * The consumer's building blocks, apart from Kafka and ClickHouse: the buffer that makes batches,
 * the signal its loops wait on, and the queue that commits offsets off the insert path.
 */

/** Where a consumed message came from: all the batching needs of it. */
export interface Positioned {
  topic: string;
  partition: number;
  offset: string;
}

/** One key per topic-partition, for maps. */
export function partitionKey(m: { topic: string; partition: number }): string {
  return `${m.topic}\u0000${m.partition}`;
}

export interface TopicOffset {
  topic: string;
  partition: number;
  /** The next offset to read (the last one stored + 1). */
  offset: string;
}

/** Whether offset `a` is above offset `b`, both as the decimal text Kafka's offsets travel in (no BigInt per message). */
export function offsetAbove(a: string, b: string): boolean {
  return a.length !== b.length ? a.length > b.length : a > b;
}

/** Per topic-partition, the offset to commit after `batch` is stored: its last offset + 1. */
export function nextOffsets(batch: readonly Positioned[]): Map<string, TopicOffset> {
  const last = new Map<string, { m: Positioned }>();
  // A batch comes in runs of one partition: its key is made once per run, not per message.
  let run: { m: Positioned } | undefined;
  for (const m of batch) {
    if (!run || run.m.partition !== m.partition || run.m.topic !== m.topic) {
      const key = partitionKey(m);
      run = last.get(key);
      if (!run) last.set(key, (run = { m }));
    }
    if (offsetAbove(m.offset, run.m.offset)) run.m = m;
  }
  return new Map([...last].map(([k, { m }]) => [k, { topic: m.topic, partition: m.partition, offset: (BigInt(m.offset) + 1n).toString() }]));
}

/**
 * The batching policy. A batch is due when it holds `maxRows` messages, or when its first message
 * has waited `flushMs`. The consumer takes the next fetch only once a batch is stored, so at most
 * one insert runs per fetch cycle whatever `flushMs` (~40–75 inserts/s at 1,000 rows/s, measured);
 * `flushMs` lets the partitions of one fetch join one insert, or, raised, trades latency for fewer
 * parts. Under load, messages pile up while the previous insert runs and batches grow towards
 * `maxRows` by themselves.
 *
 * It keeps whatever it is given, in order: deciding what not to take (a message it holds already,
 * a partition given up) is the runner's business. (Until issue 9 it also skipped any offset at or
 * below the last one taken per partition, for the whole process: after a topic was re-created,
 * that dropped the new messages at reused offsets without a word.)
 */
export class BatchBuffer<M> {
  private items: M[] = [];
  private firstAt = 0;

  constructor(
    readonly maxRows: number,
    readonly flushMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.items.length;
  }

  add(messages: readonly M[]): void {
    if (messages.length === 0) return;
    if (this.items.length === 0) this.firstAt = this.now();
    for (const m of messages) this.items.push(m);
  }

  /** Removes the messages `drop` selects (a partition given up); returns how many. */
  remove(drop: (m: M) => boolean): number {
    const before = this.items.length;
    this.items = this.items.filter((m) => !drop(m));
    return before - this.items.length;
  }

  /** Enough is waiting: stop taking more until a batch is taken. */
  full(): boolean {
    return this.items.length >= this.maxRows;
  }

  /** Milliseconds until the batch is due; 0 when due now; Infinity when empty. */
  dueIn(): number {
    if (this.items.length === 0) return Infinity;
    if (this.full()) return 0;
    return Math.max(0, this.firstAt + this.flushMs - this.now());
  }

  /**
   * The oldest `maxRows` messages. What stays keeps the deadline of the batch it came in with
   * (conservative: its oldest row may be older than that, never younger).
   */
  take(): M[] {
    return this.items.splice(0, this.maxRows);
  }

  /** Everything, emptying the buffer. */
  drain(): M[] {
    const all = this.items;
    this.items = [];
    return all;
  }
}

/**
 * Wakes waiters; a wait also ends after `ms`. A wait that ends by its timeout takes itself off
 * the list (until issue 9 it stayed there until the next notify: ~480 bytes per wait, a wait
 * every 3 s per blocked partition for as long as ClickHouse was down).
 */
export class Signal {
  private waiters = new Set<() => void>();
  /** Waits in progress. */
  get waiting(): number {
    return this.waiters.size;
  }
  notify(): void {
    const w = this.waiters;
    this.waiters = new Set();
    for (const wake of w) wake();
  }
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const waiters = this.waiters;
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : null;
      function done() {
        if (timer) clearTimeout(timer);
        waiters.delete(done);
        resolve();
      }
      waiters.add(done);
    });
  }
}

/**
 * Offset commits off the insert path: `request` returns at once, one commit runs at a time, and
 * what was requested meanwhile goes out merged (per partition, the highest offset) in the next.
 *
 * Safe because every offset requested covers rows already stored: a commit that is late, lost
 * (crash) or refused (rebalance) only makes those rows be read again, and the sink finds them
 * stored. Never committed twice, never lower than what this queue already committed — unless the
 * runner saw the partition's offsets go back (`reset`: a re-created topic starts again at 0).
 */
export class CommitQueue {
  private pending = new Map<string, TopicOffset>();
  private readonly committed = new Map<string, bigint>();
  private running: Promise<unknown> | null = null;

  constructor(
    private readonly commit: (offsets: TopicOffset[]) => Promise<void>,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Queues, per topic-partition, the next offset to read. */
  request(offsets: ReadonlyMap<string, TopicOffset>): void {
    for (const [key, o] of offsets) {
      const cur = this.pending.get(key);
      if (!cur || BigInt(o.offset) > BigInt(cur.offset)) this.pending.set(key, o);
    }
    // Cleared by `finally` on the promise, after this assignment: when run() has nothing to send
    // it ends synchronously, and a `finally` inside it would clear `running` before it is set —
    // leaving a settled promise there for good, so that no commit was ever sent again and drain()
    // spun forever (found by the unit test of reset below).
    if (!this.running) this.running = this.run().finally(() => (this.running = null));
  }

  /** The offset this queue last committed for a partition; null before the first. */
  committedOffset(key: string): bigint | null {
    return this.committed.get(key) ?? null;
  }

  /** Forgets what was committed for `key`, so that a lower offset can be committed next. */
  reset(key: string): void {
    this.committed.delete(key);
  }

  /** Drops requests not yet sent for partitions this member no longer owns (after a rebalance). */
  forget(keep: (key: string) => boolean): void {
    for (const key of [...this.pending.keys()]) if (!keep(key)) this.pending.delete(key);
    for (const key of [...this.committed.keys()]) if (!keep(key)) this.committed.delete(key);
  }

  /** Resolves once every offset requested so far was committed, or its commit failed. */
  async drain(): Promise<void> {
    while (this.running) await this.running;
  }

  private async run(): Promise<void> {
    while (this.pending.size > 0) {
      const due: TopicOffset[] = [];
      for (const [key, o] of this.pending) {
        if (BigInt(o.offset) > (this.committed.get(key) ?? -1n)) due.push(o);
      }
      this.pending = new Map();
      if (due.length === 0) continue;
      try {
        await this.commit(due);
        for (const o of due) this.committed.set(partitionKey(o), BigInt(o.offset));
      } catch (err) {
        this.onError(err);
      }
    }
  }
}
