import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
// As in src/: the patch is imported by the modules that use kafkajs, before kafkajs.
import { createPublisher } from '../../src/capture/publisher.js';
import { createDefaultPartitioner, groupMessagesPerPartition, kafkajsPatch, scheduleCheckPendingRequests, type BatchClass } from '../../src/kafka/kafkajs-patch.js';
import { createRequire } from 'node:module';
import { UNKNOWN_TOPIC_TEXT } from '../../src/kafka/kafka.js';

describe('kafkajs patch: linear grouping of a send by partition', () => {
  const partitionMetadata = [{ partitionId: 0 }, { partitionId: 1 }, { partitionId: 2 }];
  const partitioner = ({ message }: { message: { key: string } }) => Number(message.key) % 3;

  it('took: kafkajs uses our function', () => {
    expect(typeof createPublisher).toBe('function');
    expect(kafkajsPatch.active).toBe(true);
    const require = createRequire(import.meta.url);
    expect(require('kafkajs/src/producer/groupMessagesPerPartition.js')).toBe(groupMessagesPerPartition);
  });

  it('groups exactly like kafkajs: same partitions, same messages, same order', () => {
    const messages = Array.from({ length: 1000 }, (_, i) => ({ key: String((i * 7919) % 1000), value: `v${i}` }));
    const args = { topic: 't', partitionMetadata, messages, partitioner };
    const ours = groupMessagesPerPartition(args);
    expect(ours).toEqual(kafkajsPatch.original(args));
    expect(Object.keys(ours).sort()).toEqual(['0', '1', '2']);
    expect(Object.values(ours).reduce((n, a) => n + a.length, 0)).toBe(1000);
  });

  it('returns {} without partition metadata, as kafkajs does', () => {
    const args = { topic: 't', partitionMetadata: [], messages: [{ key: '1' }], partitioner };
    expect(groupMessagesPerPartition(args)).toEqual({});
    expect(kafkajsPatch.original(args)).toEqual({});
  });
});

describe('kafkajs patch: the DefaultPartitioner without an array per message', () => {
  const require = createRequire(import.meta.url);
  type Args = Parameters<ReturnType<typeof createDefaultPartitioner>>[0];
  const metadata = (leaders: number[]) => leaders.map((leader, partitionId) => ({ partitionId, leader }));
  // A key as the producer sends it (text) or as bytes, odd lengths, non-ASCII.
  const key = (i: number): string | Buffer => (i % 3 === 0 ? Buffer.from(`k\u00e9y-${i * 7919}`) : `${i}${'x'.repeat(i % 5)}`);

  it('took: Partitioners.DefaultPartitioner is ours', () => {
    expect(require('kafkajs').Partitioners.DefaultPartitioner).toBe(createDefaultPartitioner);
    expect(kafkajsPatch.originalDefaultPartitioner).not.toBe(createDefaultPartitioner);
  });

  it("a message's own partition, and a key's partition, are kafkajs's", () => {
    const ours = createDefaultPartitioner();
    const theirs = (kafkajsPatch.originalDefaultPartitioner as () => (a: Args) => number)();
    for (const partitions of [1, 2, 3, 7, 12]) {
      const partitionMetadata = metadata(Array.from({ length: partitions }, (_, i) => (i === 1 ? -1 : 0)));
      for (let i = 0; i < 500; i++) {
        const keyed = { topic: 't', partitionMetadata, message: { key: key(i) } };
        expect(ours(keyed)).toBe(theirs(keyed));
        const own = { topic: 't', partitionMetadata, message: { key: key(i), partition: i % partitions } };
        expect(ours(own)).toBe(i % partitions);
        expect(theirs(own)).toBe(i % partitions);
      }
    }
  });

  it("without key or partition: round-robin over the partitions with a leader, in kafkajs's order", () => {
    const partitionMetadata = metadata([0, -1, 2, 0, -1]); // 0, 2 and 3 have a leader
    const cycle = (p: (a: Args) => number) => Array.from({ length: 9 }, () => p({ topic: 't', partitionMetadata, message: {} }));
    const ours = cycle(createDefaultPartitioner());
    const theirs = cycle((kafkajsPatch.originalDefaultPartitioner as () => (a: Args) => number)());
    // Each starts at a random point of the same cycle.
    const rotations = (xs: number[]) => [0, 1, 2].map((r) => [...xs.slice(r), ...xs.slice(0, r)].slice(0, 3).join());
    expect(new Set(ours.slice(0, 3))).toEqual(new Set([0, 2, 3]));
    expect(rotations(theirs.slice(0, 3))).toContain(ours.slice(0, 3).join());
    expect(ours.slice(3)).toEqual([...ours.slice(0, 3), ...ours.slice(0, 3)]);
    // No partition has a leader: kafkajs picks among all of them, and so does ours.
    const none = createDefaultPartitioner();
    const all = Array.from({ length: 5 }, () => none({ topic: 'u', partitionMetadata: metadata([-1, -1, -1, -1, -1]), message: {} }));
    expect(new Set(all)).toEqual(new Set([0, 1, 2, 3, 4]));
  });
});

describe("kafkajs patch: the consumer's Batch without a Long per message", () => {
  const require = createRequire(import.meta.url);
  const Patched = require('kafkajs/src/consumer/batch.js') as BatchClass;
  const Original = kafkajsPatch.originalBatch;
  const ABORT_MARKER = Buffer.from([0, 0, 0, 0]);
  const msg = (offset: string, extra: Record<string, unknown> = {}) => ({
    offset,
    key: null as Buffer | null,
    value: Buffer.from(offset),
    isControlRecord: false,
    batchContext: { producerId: '-1', inTransaction: false },
    ...extra,
  });
  const view = (b: object) => {
    const x = b as Record<string, unknown> & Record<string, () => unknown>;
    return {
      fields: { ...x },
      isEmpty: x.isEmpty!(),
      isEmptyIncludingFiltered: x.isEmptyIncludingFiltered!(),
      isEmptyDueToFiltering: x.isEmptyDueToFiltering!(),
      isEmptyControlRecord: x.isEmptyControlRecord!(),
      firstOffset: x.firstOffset!(),
      lastOffset: x.lastOffset!(),
      offsetLag: x.offsetLag!(),
      offsetLagLow: x.offsetLagLow!(),
    };
  };
  const cases: Array<[name: string, fetched: string, data: ConstructorParameters<BatchClass>[2]]> = [
    ['every message at or above the fetched offset', '0', { partition: 0, highWatermark: '3', messages: ['0', '1', '2'].map((o) => msg(o)) }],
    ['messages below the fetched offset (a compressed batch), across a digit boundary', '998', { partition: 1, highWatermark: '1003', messages: ['95', '996', '997', '998', '999', '1000', '1001', '1002'].map((o) => msg(o)) }],
    ['only messages below it', '10', { partition: 2, highWatermark: '10', messages: ['7', '8', '9'].map((o) => msg(o)) }],
    ['no messages', '42', { partition: 0, highWatermark: '42', messages: [] }],
    [
      'control records and an aborted transaction',
      '5',
      {
        partition: 0,
        highWatermark: '12',
        abortedTransactions: [{ producerId: '7', firstOffset: '6' }],
        messages: [
          msg('5'),
          msg('6', { batchContext: { producerId: '7', inTransaction: true } }),
          msg('7', { batchContext: { producerId: '7', inTransaction: true } }),
          msg('8', { key: ABORT_MARKER, isControlRecord: true, batchContext: { producerId: '7', inTransaction: true } }),
          msg('9'),
          msg('10', { isControlRecord: true }),
          msg('11'),
        ],
      },
    ],
    ['offsets beyond 2^53', '9007199254740993', { partition: 0, highWatermark: '9007199254740996', messages: ['9007199254740992', '9007199254740993', '9007199254740995'].map((o) => msg(o)) }],
  ];

  it('took: kafkajs makes batches with our constructor', () => {
    expect(Patched).not.toBe(Original);
    expect(new Patched('t', '0', cases[0]![2])).toBeInstanceOf(Original);
  });

  for (const [name, fetched, data] of cases) {
    it(`the same batch as kafkajs: ${name}`, () => {
      const ours = view(new Patched('t', fetched, data));
      expect(ours).toEqual(view(new Original('t', fetched, data)));
      expect(ours.fields.messagesWithinOffset).toEqual(data.messages.filter((m) => BigInt(m.offset) >= BigInt(fetched)));
    });
  }

  it('a list that needs no filtering is kept, not copied', () => {
    const data = cases[0]![2];
    const b = new Patched('t', '0', data) as { messages: unknown[]; messagesWithinOffset: unknown[] };
    expect(b.messagesWithinOffset).toBe(data.messages);
    expect(b.messages).toBe(data.messages);
  });

  it('an offset that is not plain decimal text goes to kafkajs itself', () => {
    const data = cases[1]![2];
    expect(view(new Patched('t', 998 as unknown as string, data))).toEqual(view(new Original('t', 998 as unknown as string, data)));
  });
});

describe("kafkajs patch: the request queue's checks only while a request waits", () => {
  const require = createRequire(import.meta.url);
  const silent = { debug() {}, info() {}, warn() {}, error() {} };
  type Answer = { correlationId: number; payload: Buffer | null };
  type Queue = InstanceType<typeof kafkajsPatch.RequestQueue> & {
    push(r: unknown): void;
    fulfillRequest(r: { correlationId: number; payload: Buffer; size: number }): void;
    maybeThrottle(ms: number): void;
    scheduleCheckPendingRequests(): void;
  };
  /** kafkajs's own RequestQueue (one request in flight at most); with `own`, kafkajs's own scheduling too. */
  const queue = (own = false): Queue => {
    const q = new kafkajsPatch.RequestQueue({ maxInFlightRequests: 1, requestTimeout: 30_000, enforceRequestTimeout: false, clientId: 'c', broker: 'b:9092', logger: silent }) as Queue;
    if (own) q.scheduleCheckPendingRequests = kafkajsPatch.originalScheduleCheck as () => void;
    return q;
  };
  /** Pushes request `id`; records when it is written to the socket, and its answer. */
  const push = (q: Queue, id: number, sent: number[], answers: Answer[]) =>
    q.push({
      entry: { correlationId: id, apiKey: 1, apiName: 'Fetch', apiVersion: 11, resolve: (a: Answer) => answers.push(a), reject: (e: Error) => { throw e; } },
      expectResponse: true,
      sendRequest: () => sent.push(id),
    });
  const answer = (q: Queue, id: number) => q.fulfillRequest({ correlationId: id, payload: Buffer.from(`answer ${id}`), size: 8 });

  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.clearAllTimers();
    vi.useRealTimers();
  });

  it('took: the class of every queue has our method', () => {
    expect(require('kafkajs/src/network/requestQueue/index.js').prototype.scheduleCheckPendingRequests).toBe(scheduleCheckPendingRequests);
    expect(kafkajsPatch.originalScheduleCheck).not.toBe(scheduleCheckPendingRequests);
  });

  it('sends a request that waited for the one in flight, and leaves no timer once the queue is empty (kafkajs polls it every millisecond)', () => {
    for (const own of [false, true]) {
      const q = queue(own);
      const check = vi.spyOn(q, 'checkPendingRequests');
      const sent: number[] = [];
      const answers: Answer[] = [];
      push(q, 1, sent, answers);
      push(q, 2, sent, answers); // waits: one request in flight at most
      expect(sent).toEqual([1]);
      const waiting = check.mock.calls.length;
      vi.advanceTimersByTime(9);
      expect(check.mock.calls.length).toBe(waiting);
      vi.advanceTimersByTime(1); // while a request waits, the queue is checked every 10 ms
      expect(check.mock.calls.length).toBe(waiting + 1);
      expect(sent).toEqual([1]);
      answer(q, 1); // the answer checks the queue at once: 2 goes
      expect(sent).toEqual([1, 2]);
      answer(q, 2);
      expect(answers.map((a) => a.payload?.toString())).toEqual(['answer 1', 'answer 2']);
      vi.advanceTimersByTime(10); // the check scheduled while 2 waited
      const checks = check.mock.calls.length;
      vi.advanceTimersByTime(1_000);
      if (own) {
        // kafkajs 2.2.4: a timer of (-1 - now) ms, run after 1 ms, again and again.
        expect(check.mock.calls.length - checks).toBeGreaterThanOrEqual(900);
        expect(vi.getTimerCount()).toBe(1);
      } else {
        expect(check.mock.calls.length).toBe(checks);
        expect(vi.getTimerCount()).toBe(0);
      }
    }
  });

  it('a request that waits for the client-side throttle goes when it ends, as with kafkajs', () => {
    for (const own of [false, true]) {
      const q = queue(own);
      const sent: number[] = [];
      push(q, 1, sent, []);
      answer(q, 1);
      q.maybeThrottle(50); // the broker asked for 50 ms without requests
      push(q, 2, sent, []);
      vi.advanceTimersByTime(49);
      expect(sent).toEqual([1]);
      vi.advanceTimersByTime(1);
      expect(sent).toEqual([1, 2]);
    }
  });
});

describe('what the consumer reads in kafkajs 2.2.4 log lines', () => {
  it('UNKNOWN_TOPIC_OR_PARTITION carries the text the topic watch looks for (src/consumer.ts)', () => {
    const { errorCodes } = createRequire(import.meta.url)('kafkajs/src/protocol/error.js') as { errorCodes: Array<{ type: string; message: string }> };
    expect(errorCodes.find((e) => e.type === 'UNKNOWN_TOPIC_OR_PARTITION')?.message).toBe(UNKNOWN_TOPIC_TEXT);
  });
});
