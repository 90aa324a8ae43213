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
 * has waited `flushMs`. At light load that is one small insert per `flushMs` at most (50 ms: ≤ 20
 * inserts/s, far from "Too many parts"); under load, messages pile up while the previous insert
 * runs and batches grow towards `maxRows` by themselves.
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
