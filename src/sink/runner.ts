/**
 * The consumer's orchestration, apart from Kafka and ClickHouse (the part kafkajs's runner.js
 * plays for kafkajs): messages in from the fetch loop (`handle`, one call per partition's batch),
 * batches out to `store`, offsets out to `commit`, and the rules that keep "nothing lost, nothing
 * stored twice" on every path:
 *
 *  1. A partition's committed offset never passes a message that is neither stored nor
 *     dead-lettered. Offsets are requested for commit only after `store` succeeded, batches are
 *     stored in the order they were taken, and a batch given up while stopping (its last attempt
 *     failed) ends the flush loop: nothing after it is stored or committed (issue 9, finding 1).
 *  2. `handle` returns only once its messages are stored: kafkajs waits for it before a rebalance,
 *     so the partition's next owner starts after them. While it waits it heartbeats, and when the
 *     heartbeat says the group is rebalancing or this member is gone, it gives the partition up:
 *     its messages leave the buffer, an attempt in flight is waited for, the next attempt goes
 *     without them, and `handle` throws the heartbeat's error so that kafkajs neither resolves those
 *     offsets nor waits for them before rejoining. An expelled member never inserts rows a new
 *     owner reads again (finding 4).
 *  3. Messages are never skipped by their offset: a partition whose offsets go back (a re-created
 *     topic, a truncated log, offsets reset by hand) is logged loudly and its messages are stored
 *     (the sink keeps each row version once); its commits may then go lower (finding 5).
 *  4. Errors are retried with capped backoff only when retriable; any other error ends the runner
 *     (`done` rejects with it) with nothing unstored committed (finding 9).
 */
import { BatchBuffer, CommitQueue, nextOffsets, partitionKey, Signal, type Positioned, type TopicOffset } from './batch.js';
import { describeError, isRetriable } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { backoffDelay, sleep as realSleep } from '../common/retry.js';

export interface RunnerHooks<M extends Positioned> {
  /** Stores a batch (and dead-letters what cannot be stored); throws when it could not. Safe to repeat. */
  store(batch: M[]): Promise<void>;
  commit(offsets: TopicOffset[]): Promise<void>;
}

export interface RunnerOptions {
  /** CONSUMER_MAX_BATCH_ROWS */
  maxRows: number;
  /** CONSUMER_FLUSH_MS */
  flushMs: number;
  /** RETRY_MAX_DELAY_MS */
  retryMaxDelayMs: number;
  log: Logger;
  /** Seams for unit tests. */
  now?: () => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** How long `handle` waits between heartbeats. Default 3000 (kafkajs heartbeats every 3 s at most). */
  beatEveryMs?: number;
}

/** Heartbeat errors after which this member no longer owns what it was given (kafkajs `type`s). */
const MEMBERSHIP_LOST = new Set(['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'NOT_COORDINATOR_FOR_GROUP', 'NOT_COORDINATOR', 'FENCED_INSTANCE_ID']);

export function isMembershipLost(err: unknown): boolean {
  const type = (err as { type?: unknown } | null)?.type;
  return typeof type === 'string' && MEMBERSHIP_LOST.has(type);
}

/** A message as the runner holds it: with the generation of its partition when it came. */
interface Held<M> {
  m: M;
  key: string;
  gen: number;
}

class PartitionState {
  /** Bumped when the partition is given up: what was held before is not stored any more. */
  gen = 0;
  /** The highest offset stored (or dead-lettered) by this process. */
  storedUpTo = -1n;
  /** The highest offset taken in, and how many taken-in messages of this generation are not stored yet. */
  highestTaken = -1n;
  holding = 0;
}

export class ConsumerRunner<M extends Positioned> {
  private readonly buffer: BatchBuffer<Held<M>>;
  private readonly parts = new Map<string, PartitionState>();
  /** Wakes the flush loop: messages were added, or stop. */
  private readonly added = new Signal();
  /** Wakes `handle` calls: the buffer has room, a batch was stored or given up, an attempt ended. */
  private readonly progressed = new Signal();
  /** The batch of the attempt running now (null between attempts and batches). */
  private inFlight: Held<M>[] | null = null;
  private readonly abort = new AbortController();
  private stopping = false;
  private failure: unknown = null;
  private storeFailing = false;
  private readonly commits: CommitQueue;
  /** Topics whose offsets are not committed until the next group join (see forgetTopic). */
  private readonly suspended = new Set<string>();
  private readonly flusher: Promise<void>;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly beatEveryMs: number;
  readonly totals = { batches: 0, messages: 0, abandoned: 0, givenUp: 0 };

  constructor(
    private readonly hooks: RunnerHooks<M>,
    private readonly options: RunnerOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? realSleep;
    this.beatEveryMs = options.beatEveryMs ?? 3000;
    this.buffer = new BatchBuffer<Held<M>>(options.maxRows, options.flushMs, this.now);
    this.commits = new CommitQueue(
      (offsets) => hooks.commit(offsets),
      // Stored but not committed (group rebalancing, broker restarting): read again later, and
      // the sink finds every row of it stored.
      (err) => options.log.warn({ err: describeError(err) }, 'offset commit failed; the batch will be read again and found stored'),
    );
    this.flusher = this.flushLoop();
  }

  /** False while batches cannot be stored, or once stopping: for /readyz. */
  get ready(): boolean {
    return !this.storeFailing && !this.stopping && this.failure === null;
  }

  /** Resolves when stopped by `stop`; rejects with the error that ended the runner otherwise. */
  get done(): Promise<void> {
    return this.flusher.then(() => {
      if (this.failure !== null) throw this.failure;
    });
  }

  /**
   * One partition's messages, from kafkajs's eachBatch. Resolves once they are stored (or when
   * stopping: then they are neither stored nor committed, and the next run reads them again).
   * Throws the heartbeat's error when this member lost the partition meanwhile (rule 2).
   */
  async handle(messages: readonly M[], heartbeat: () => Promise<void>): Promise<void> {
    if (messages.length === 0) return;
    const key = partitionKey(messages[0] as M);
    const st = this.partition(key);
    const fresh = this.arrivals(key, st, messages);
    if (fresh.length === 0) return;

    // Back-pressure: while a full batch waits (ClickHouse slow or down), take no more.
    while (this.buffer.full() && this.running()) {
      await this.progressed.wait(this.beatEveryMs);
      await heartbeat().catch((err: unknown) => {
        if (isMembershipLost(err)) throw err; // nothing of these messages is held yet
      });
    }
    if (!this.running()) return;
    const gen = st.gen;
    this.buffer.add(fresh.map((m) => ({ m, key, gen })));
    st.holding += fresh.length;
    const last = BigInt((fresh[fresh.length - 1] as M).offset);
    if (last > st.highestTaken) st.highestTaken = last;
    this.added.notify();

    while (st.storedUpTo < last && st.gen === gen && this.running()) {
      await this.progressed.wait(this.beatEveryMs);
      if (st.storedUpTo >= last) break;
      try {
        await heartbeat();
      } catch (err) {
        if (!isMembershipLost(err)) continue; // the coordinator is unreachable: keep waiting
        await this.giveUp(key, st);
        if (st.storedUpTo >= last) return; // the attempt in flight stored them after all
        throw err;
      }
    }
  }

  /**
   * The messages of a new call that are not already held, and what their offsets say: a partition
   * whose offsets go back below what this process committed was re-created, truncated or reset.
   */
  private arrivals(key: string, st: PartitionState, messages: readonly M[]): M[] {
    const first = BigInt((messages[0] as M).offset);
    // Messages this process holds still (not stored yet) are not taken twice. kafkajs does not
    // deliver a partition again while its eachBatch runs; this guards the rule, it costs nothing.
    const fresh = st.holding > 0 ? messages.filter((m) => BigInt(m.offset) > st.highestTaken) : [...messages];
    const committed = this.commits.committedOffset(key);
    if (committed !== null && first < committed) {
      const m = messages[0] as M;
      this.options.log.warn(
        { topic: m.topic, partition: m.partition, committedOffset: committed.toString(), firstOffset: m.offset },
        `partition ${m.partition} of ${m.topic} went back from offset ${committed} to ${m.offset}: the topic was re-created or truncated, or the group's offsets were reset; storing these messages (ClickHouse keeps each row version once)`,
      );
      this.commits.reset(key);
      st.storedUpTo = first - 1n;
      st.highestTaken = st.holding > 0 ? st.highestTaken : first - 1n;
    } else if (first <= st.storedUpTo) {
      // Read again after a rebalance or a restart of the kafkajs consumer, from the last commit:
      // these are stored already and the sink will find them so.
      st.storedUpTo = first - 1n;
    }
    return fresh;
  }

  /** Rule 2: this member lost the partition. Drop what it holds of it; wait for an attempt in flight. */
  private async giveUp(key: string, st: PartitionState): Promise<void> {
    // A new generation: what was taken in before no longer counts as held (a message of it in the
    // attempt in flight is left out of the next attempt), so when kafkajs hands the partition back
    // its messages are taken in again. (Counting them still held made such a call wait forever.)
    st.gen++;
    st.holding = 0;
    st.highestTaken = st.storedUpTo;
    const dropped = this.buffer.remove((h) => h.key === key);
    this.totals.givenUp += dropped;
    this.progressed.notify();
    while (this.inFlight?.some((h) => h.key === key)) await this.progressed.wait(1000);
    this.options.log.info({ partition: key.split('\u0000')[1], dropped }, 'the group is rebalancing: gave up the messages of a partition not stored yet');
  }

  private partition(key: string): PartitionState {
    let st = this.parts.get(key);
    if (!st) {
      st = new PartitionState();
      this.parts.set(key, st);
    }
    return st;
  }

  private running(): boolean {
    return !this.stopping && this.failure === null;
  }

  /**
   * An error from outside the batches that retrying cannot cure (the group handed this member
   * topics it does not read): ends the runner like a batch that cannot be stored — `done` rejects
   * with it; nothing not stored is committed.
   */
  fail(err: unknown): void {
    if (this.failure !== null) return;
    this.options.log.error({ err: describeError(err) }, 'stopping: an error retrying cannot cure');
    this.failure = err;
    this.abort.abort();
    this.added.notify();
    this.progressed.notify();
  }

  /** After a rebalance: pending commits of partitions no longer ours are dropped. */
  assigned(keys: ReadonlySet<string>): void {
    this.commits.forget((key) => keys.has(key));
    this.suspended.clear();
  }

  /**
   * The topic may have been deleted (and re-created): its commits not yet sent are dropped, and
   * what was committed is forgotten, so that no offset of the old topic lands on a new one. The
   * consumer then starts over from the group's offsets, which Kafka deleted with the topic.
   */
  forgetTopic(topic: string): void {
    this.suspended.add(topic);
    this.commits.forget((key) => !key.startsWith(`${topic}\u0000`));
  }

  private async flushLoop(): Promise<void> {
    for (;;) {
      if (this.failure !== null) return;
      if (this.stopping && this.buffer.size === 0) return;
      const waitMs = this.stopping ? 0 : this.buffer.dueIn();
      if (waitMs > 0) {
        await this.added.wait(waitMs);
        continue;
      }
      const batch = this.buffer.take();
      this.progressed.notify(); // room in the buffer
      const outcome = await this.storeBatch(batch);
      if (outcome === 'given-up') {
        // Rule 1: nothing after a batch given up is stored or committed.
        const rest = this.buffer.drain();
        for (const h of rest) if (h.gen === this.partition(h.key).gen) this.partition(h.key).holding--;
        this.progressed.notify();
        return;
      }
    }
  }

  private async storeBatch(taken: Held<M>[]): Promise<'stored' | 'dropped' | 'given-up'> {
    for (let attempt = 1; ; attempt++) {
      if (this.failure !== null) return 'given-up'; // fail() meanwhile: nothing more is stored
      // Partitions given up since the batch was taken leave it (rule 2).
      const batch = this.current(taken);
      taken = batch;
      if (batch.length === 0) return 'dropped';
      this.inFlight = batch;
      const messages = batch.map((h) => h.m);
      try {
        await this.hooks.store(messages);
      } catch (err) {
        this.inFlight = null;
        this.progressed.notify();
        if (!isRetriable(err)) {
          this.options.log.error({ err: describeError(err), rows: batch.length }, 'a batch cannot be stored, and retrying cannot help: stopping (nothing of it is committed)');
          this.failure = err;
          this.progressed.notify();
          return 'given-up';
        }
        this.storeFailing = true;
        if (this.stopping && attempt > 1) {
          this.totals.abandoned += batch.length;
          this.options.log.warn({ rows: batch.length, err: describeError(err) }, 'stopping with a batch not stored: neither it nor anything after it is committed, and the next run reads it again');
          return 'given-up';
        }
        const delayMs = backoffDelay(attempt, this.options.retryMaxDelayMs);
        this.options.log.warn({ attempt, delayMs, rows: batch.length, err: describeError(err) }, `could not store a batch; retrying in ${delayMs} ms`);
        await this.sleep(delayMs, this.abort.signal);
        continue;
      }
      this.inFlight = null;
      if (this.storeFailing || attempt > 1) this.options.log.info({ attempts: attempt }, 'batch stored after retrying');
      this.storeFailing = false;
      // Per partition, not per message (a BigInt per message was ~2 % of the consumer's CPU).
      const offsets = nextOffsets(messages);
      for (const [key, o] of offsets) {
        const st = this.partition(key);
        const last = BigInt(o.offset) - 1n;
        if (last > st.storedUpTo) st.storedUpTo = last;
      }
      this.release(batch);
      this.totals.batches++;
      this.totals.messages += batch.length;
      for (const [key, o] of offsets) if (this.suspended.has(o.topic)) offsets.delete(key);
      this.commits.request(offsets);
      this.progressed.notify();
      return 'stored';
    }
  }

  /**
   * The messages of a stored batch no longer held by their partitions. (A loop over every message
   * kept out of the async storeBatch: V8 compiles such a loop anew on every call of an async
   * function — see TableSink.write.)
   */
  private release(batch: readonly Held<M>[]): void {
    let runKey: string | null = null;
    let st = null as unknown as PartitionState;
    for (const h of batch) {
      if (h.key !== runKey) st = this.partition((runKey = h.key));
      if (h.gen === st.gen) st.holding--;
    }
  }

  /** The messages of `taken` whose partition was not given up since they were taken in (rule 2). */
  private current(taken: Held<M>[]): Held<M>[] {
    // A batch comes in runs of one partition: its state is looked up once per run.
    let runKey: string | null = null;
    let gen = 0;
    let all = true;
    for (const h of taken) {
      if (h.key !== runKey) gen = this.partition((runKey = h.key)).gen;
      if (h.gen !== gen) {
        all = false;
        break;
      }
    }
    return all ? taken : taken.filter((h) => h.gen === this.partition(h.key).gen);
  }

  /**
   * Graceful stop: the batch in flight gets one more attempt (rule 1), waiting `handle` calls
   * return without storing, and the commits requested so far are sent before this resolves —
   * before the consumer leaves the group, so that the next member starts after them.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    this.added.notify();
    this.progressed.notify();
    await this.flusher;
    await this.commits.drain();
  }
}
