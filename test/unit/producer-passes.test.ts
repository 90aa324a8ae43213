// A drain pass (drainTable) against a fake PostgreSQL and Kafka: how many batch transactions it
// opens, and how many at once. The claim, SKIP LOCKED and the publish themselves are tested
// against the real services (producer-concurrency, changes and others); this is the pass's logic.
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { drainTable, tableSource, type TableSource } from '../../src/capture/producer.js';
import { PRODUCER_BEGIN } from '../../src/capture/plans.js';
import type { Publisher } from '../../src/capture/publisher.js';
import { createLogger } from '../../src/common/logger.js';
import type { Config } from '../../src/config/config.js';
import { spec } from './support/specs.js';

const source: TableSource = tableSource(
  spec('public', 'user_login', [
    ['id', 'int4', { notNull: true }],
    ['username', 'text'],
    ['sent_to_kafka', 'bool'],
  ], { flagColumn: 'sent_to_kafka' }),
);

/** What copy-out.ts hands to client.query. */
interface CopySubmittable {
  submit(connection: { query(text: string): void }): void;
  handleCopyData(msg: { chunk: Buffer }): void;
  handleReadyForQuery(): void;
}

/**
 * Pending rows 1…n of a flag-mode table. A transaction's claim takes the lowest pending rows no
 * other open transaction holds (SKIP LOCKED), up to its limit; COMMIT marks them sent.
 */
function fakeDatabase(n: number, opts: { oneSession?: boolean; failPrepare?: number } = {}) {
  const pending = new Set(Array.from({ length: n }, (_, i) => i + 1));
  const held = new Set<number>();
  const stats = { transactions: 0, leads: 0, open: 0, mostOpen: 0, prepared: [] as string[], prepareTrips: 0, claimsFromStart: 0, claimsAfter: [] as number[] };
  let failPrepare = opts.failPrepare; // the index of a PREPARE that fails, once (as a missing table would)
  let version = 0;
  const tick = () => new Promise((r) => setImmediate(r));
  const client = () => {
    let mine: number[] = [];
    const prepared = new Set<string>(); // this session's

    const begin = () => {
      stats.transactions++;
      stats.mostOpen = Math.max(stats.mostOpen, ++stats.open);
    };
    // Rows in key order after `after`, as claimRows / claimRowsAfter; is_last on the highest key.
    const claim = (limit: number, after?: number) => {
      if (after === undefined) stats.claimsFromStart++;
      else stats.claimsAfter.push(after);
      mine = [...pending].sort((a, b) => a - b).filter((id) => !held.has(id) && (after === undefined || id > after)).slice(0, limit);
      for (const id of mine) held.add(id);
      const last = Math.max(...mine);
      return mine.map((id) => ({ c0: String(id), c1: `u${id}`, key: String(id), is_last: id === last }));
    };
    const shape = { rows: [{ capture: source.shape.capture, columns: source.shape.columns }] };
    return {
      on() {},
      off() {},
      release() {},
      async query(text: string | CopySubmittable, params?: unknown[]) {
        await tick();
        if (typeof text !== 'string') {
          // plans.copyClaim through copy-out.ts: the rows as COPY text, then ReadyForQuery
          let sql = '';
          text.submit({ query: (q: string) => (sql = q) });
          expect(sql).toBe(source.plans.copyClaim!(Number(/LIMIT (\d+)/.exec(sql)?.[1]), source.name, sql.includes(' > ') ? [/> '(\d+)'/.exec(sql)?.[1] as string] : undefined));
          const after = /t\."id" > '(\d+)'::int4/.exec(sql)?.[1];
          for (const r of claim(Number(/LIMIT (\d+)/.exec(sql)?.[1]), after === undefined ? undefined : Number(after))) {
            text.handleCopyData({ chunk: Buffer.from(`${r.c0}\t${r.c1}\t${r.key}\t${r.is_last ? 't' : 'f'}\n`) });
          }
          text.handleReadyForQuery();
          return text;
        }
        if (text === PRODUCER_BEGIN) {
          begin();
          return [{ rows: [] }, { rows: [] }];
        }
        if (text.startsWith('PREPARE ')) {
          // One statement after the other; PREPARE is not transactional: those before a failing one stay.
          stats.prepareTrips++;
          for (const [i, st] of text.split(';\n').entries()) {
            const name = st.slice(8, st.indexOf(' AS '));
            if (i === failPrepare) {
              failPrepare = undefined;
              throw Object.assign(new Error('relation "user_login" does not exist'), { code: '42P01' });
            }
            if (prepared.has(name)) throw Object.assign(new Error(`prepared statement "${name}" already exists`), { code: '42P05' });
            prepared.add(name);
            stats.prepared.push(name);
          }
          return [];
        }
        if (text === 'DEALLOCATE ALL') {
          prepared.clear();
          return { rows: [] };
        }
        if (text === source.plans.leadClaim(config.producerBatchSize, source.name).text) {
          for (const name of text.matchAll(/EXECUTE (\w+)/g)) {
            if (!prepared.has(name[1] as string)) throw Object.assign(new Error(`prepared statement "${name[1]}" does not exist`), { code: '26000' });
          }
          // LEAD_BEGIN's results, the claimed rows with their versions, no change-log rows, the shape
          stats.leads++;
          begin();
          const rows = claim(config.producerBatchSize).map((r) => ({ ...r, v: String(++version) }));
          return [...Array.from({ length: source.plans.leadClaim(config.producerBatchSize, source.name).before }, () => ({ rows: [] })), { rows }, { rows: [] }, shape];
        }
        if (text === source.plans.claimRows) return { rows: claim(params?.[0] as number) };
        if (text.startsWith('SELECT string_agg(s.v::text')) {
          // afterClaim: the rows' versions in one text, no change-log rows, the recorded shape
          return [{ rows: [{ v: mine.length === 0 ? null : mine.map(() => String(++version)).join(',') }] }, { rows: [] }, shape];
        }
        if (text === 'COMMIT' || text === 'ROLLBACK') {
          for (const id of mine) {
            held.delete(id);
            if (text === 'COMMIT') pending.delete(id);
          }
          mine = [];
          stats.open--;
          return { rows: [] };
        }
        throw new Error(`unexpected query: ${text.slice(0, 60)}`);
      },
    };
  };
  const session = opts.oneSession ? client() : undefined;
  const pool = { connect: async () => session ?? client() } as unknown as pg.Pool;
  /** A transaction outside the producer holds row `id` locked (its claims skip it) until `release`. */
  const hold = (id: number) => held.add(id);
  const release = (id: number) => held.delete(id);
  return { pool, pending, stats, hold, release };
}

function fakeKafka() {
  const published: string[] = [];
  const publisher: Publisher = {
    async connect() {},
    async publish(_topic, messages) {
      await new Promise((r) => setImmediate(r));
      for (const m of messages) published.push(m.key as string);
      return [];
    },
    async partitions() {
      return [0];
    },
    abandon() {},
    async close() {},
  };
  return { publisher, published };
}

const config = { producerBatchSize: 5, producerConcurrency: 3, producerPublishTimeoutMs: 10_000, kafkaBrokers: ['kafka:9092'], databaseUrl: 'postgres://streamer@db:5432/app' } as Config;
const log = createLogger({ level: 'silent' });

describe('drainTable', () => {
  it('a wake that finds fewer rows than a batch costs one transaction, not one per PRODUCER_CONCURRENCY, its claims in one round trip', async () => {
    const db = fakeDatabase(3);
    const kafka = fakeKafka();
    await drainTable(db.pool, kafka.publisher, config, log, source);
    expect(kafka.published).toEqual(['1', '2', '3']);
    expect(db.pending.size).toBe(0);
    expect(db.stats).toMatchObject({ transactions: 1, leads: 1, mostOpen: 1, open: 0 });
  });

  it('after a full first batch, a backlog is drained PRODUCER_CONCURRENCY batches at a time, each row once', async () => {
    const db = fakeDatabase(42);
    const kafka = fakeKafka();
    await drainTable(db.pool, kafka.publisher, config, log, source);
    expect([...kafka.published].sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 42 }, (_, i) => String(i + 1)));
    expect(db.pending.size).toBe(0);
    expect(db.stats.mostOpen).toBe(3);
    expect(db.stats.leads).toBe(1); // only the first batch claims in one round trip
    expect(db.stats.open).toBe(0);
  });

  it("the first batch's statements are prepared once per session: a second wake on the same connection only executes them", async () => {
    const db = fakeDatabase(3, { oneSession: true });
    const kafka = fakeKafka();
    await drainTable(db.pool, kafka.publisher, config, log, source);
    db.pending.add(4);
    await drainTable(db.pool, kafka.publisher, config, log, source);
    expect(kafka.published).toEqual(['1', '2', '3', '4']);
    expect(db.stats.prepared).toEqual(source.plans.leadClaim(config.producerBatchSize, source.name).statements.map((st) => st.name));
    expect(db.stats.prepared).toHaveLength(3); // the claim, the change-log claim, the shape
    expect(db.stats).toMatchObject({ transactions: 2, leads: 2, prepareTrips: 1 });
  });

  it('a PREPARE that fails leaves the session with none of them; the next batch prepares all three again', async () => {
    const db = fakeDatabase(3, { oneSession: true, failPrepare: 2 });
    const kafka = fakeKafka();
    await expect(drainTable(db.pool, kafka.publisher, config, log, source)).rejects.toThrow(/does not exist/);
    expect(db.stats.prepared).toHaveLength(2); // the two before the failing one were prepared…
    await drainTable(db.pool, kafka.publisher, config, log, source); // …and forgotten: no "already exists"
    expect(kafka.published).toEqual(['1', '2', '3']);
    expect(db.stats.prepared.slice(2)).toEqual(source.plans.leadClaim(config.producerBatchSize, source.name).statements.map((st) => st.name));
    expect(db.stats).toMatchObject({ transactions: 1, leads: 1, prepareTrips: 2 });
  });

  it('untilEmpty (the sweep): a first batch that claims nothing ends the pass at once', async () => {
    const db = fakeDatabase(0);
    const kafka = fakeKafka();
    await drainTable(db.pool, kafka.publisher, config, log, source, { untilEmpty: true });
    expect(kafka.published).toEqual([]);
    expect(db.stats).toMatchObject({ transactions: 1, leads: 1, mostOpen: 1 });
  });

  it('each batch after the first claims after the highest key of the last full batch; only a claim from the start ends the drain', async () => {
    const db = fakeDatabase(42);
    const kafka = fakeKafka();
    await drainTable(db.pool, kafka.publisher, { ...config, producerConcurrency: 1 }, log, source);
    expect(kafka.published).toEqual(Array.from({ length: 42 }, (_, i) => String(i + 1)));
    // 1–5 from the start (the first batch, alone: committed before the next claims), 6–10 from
    // the start, then after 10, 15, … 40 (41–42: short of a batch), then once more from the start,
    // which finds nothing and ends the drain.
    expect(db.stats.claimsAfter).toEqual([10, 15, 20, 25, 30, 35, 40]);
    expect(db.stats.claimsFromStart).toBe(3);
    expect(db.pending.size).toBe(0);
  });

  for (const untilEmpty of [false, true]) {
    it(`a row the claims passed by while another transaction held it is claimed before the drain ends${untilEmpty ? ' (untilEmpty)' : ''}`, async () => {
      const db = fakeDatabase(42);
      const kafka = fakeKafka();
      db.hold(3);
      let released = false;
      const onBatch = () => {
        if (released || !kafka.published.includes('30')) return;
        db.release(3); // released (rolled back) once the claims are past it
        released = true;
      };
      await drainTable(db.pool, kafka.publisher, config, log, source, { untilEmpty, onBatch });
      expect([...kafka.published].sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 42 }, (_, i) => String(i + 1)));
      expect(db.pending.size).toBe(0);
      expect(db.stats.claimsAfter.length).toBeGreaterThan(0);
      expect(db.stats.open).toBe(0);
    });
  }
});
