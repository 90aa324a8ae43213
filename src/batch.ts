/**
 * The consumer's batching, apart from Kafka and ClickHouse: which messages make the next insert,
 * and which offsets to commit once it is stored.
 */

/** Where a consumed message came from: all the batching needs of it. */
export interface Positioned {
  partition: number;
  offset: string;
}

/** Per partition, the offset to commit after `batch` is stored: its last offset + 1. */
export function nextOffsets(batch: readonly Positioned[]): Map<number, string> {
  const out = new Map<number, bigint>();
  for (const m of batch) {
    const next = BigInt(m.offset) + 1n;
    if ((out.get(m.partition) ?? -1n) < next) out.set(m.partition, next);
  }
  return new Map([...out].map(([p, o]) => [p, o.toString()]));
}

/**
 * The batching policy. A batch is due when it holds `maxRows` messages, or when its first message
 * has waited `flushMs`. The consumer takes the next fetch only once a batch is stored, so at most
 * one insert runs per fetch cycle whatever `flushMs` (~40–75 inserts/s at 1,000 rows/s, measured);
 * `flushMs` lets the partitions of one fetch join one insert, or, raised, trades latency for fewer
 * parts. Under load, messages pile up while the previous insert runs and batches grow towards
 * `maxRows` by themselves.
 *
 * It also remembers the last offset it took per partition, and ignores a message at or below it:
 * after a rebalance or a restart of the kafkajs consumer, the fetch position goes back to the
 * last commit, and the messages re-fetched are already here or already stored.
 */
export class BatchBuffer<M extends Positioned> {
  private items: M[] = [];
  private firstAt = 0;
  private readonly last = new Map<number, bigint>();

  constructor(
    readonly maxRows: number,
    readonly flushMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.items.length;
  }

  /** Adds the messages not seen before; returns how many. */
  add(messages: readonly M[]): number {
    let n = 0;
    for (const m of messages) {
      const offset = BigInt(m.offset);
      if (offset <= (this.last.get(m.partition) ?? -1n)) continue;
      this.last.set(m.partition, offset);
      if (this.items.length === 0) this.firstAt = this.now();
      this.items.push(m);
      n++;
    }
    return n;
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
}

/** Wakes waiters; a wait also ends after `ms`. */
export class Signal {
  private waiters: (() => void)[] = [];
  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : null;
      const waiters = this.waiters;
      function done() {
        if (timer) clearTimeout(timer);
        resolve();
      }
      waiters.push(done);
    });
  }
}

/**
 * Offset commits off the insert path: `request` returns at once, one commit runs at a time, and
 * what was requested meanwhile goes out merged (per partition, the highest offset) in the next.
 *
 * Safe because every offset requested covers rows already stored: a commit that is late, lost
 * (crash) or refused (rebalance) only makes those rows be read again, and the sink finds them
 * stored. Never committed twice, never lower than what this queue already committed.
 */
export class CommitQueue {
  private pending = new Map<number, bigint>();
  private readonly committed = new Map<number, bigint>();
  private running: Promise<void> | null = null;

  constructor(
    private readonly commit: (offsets: Map<number, string>) => Promise<void>,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Queues, per partition, the next offset to read. */
  request(offsets: ReadonlyMap<number, string>): void {
    for (const [partition, offset] of offsets) {
      const o = BigInt(offset);
      if (o > (this.pending.get(partition) ?? -1n)) this.pending.set(partition, o);
    }
    this.running ??= this.run();
  }

  /** Resolves once every offset requested so far was committed, or its commit failed. */
  async drain(): Promise<void> {
    while (this.running) await this.running;
  }

  private async run(): Promise<void> {
    try {
      while (this.pending.size > 0) {
        const due = new Map<number, string>();
        for (const [partition, o] of this.pending) {
          if (o > (this.committed.get(partition) ?? -1n)) due.set(partition, o.toString());
        }
        this.pending = new Map();
        if (due.size === 0) continue;
        try {
          await this.commit(due);
          for (const [partition, o] of due) this.committed.set(partition, BigInt(o));
        } catch (err) {
          this.onError(err);
        }
      }
    } finally {
      this.running = null;
    }
  }
}
