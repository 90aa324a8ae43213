/**
 * The ClickHouse writer: decoded events in, rows of CLICKHOUSE_DATABASE.user_login out, each id at
 * most once. Knows nothing of Kafka: every input carries an opaque `ref` that comes back with the
 * inputs it could not store, so the caller can dead-letter the original message.
 *
 * One `write` of a batch:
 *  1. maps every event to a row of the table's real `event_time` type, refusing values the type
 *     cannot hold (18.16 stores an out-of-range DateTime as 0000-00-00 without any error);
 *  2. drops repeated ids within the batch, then the ids ClickHouse already has (ONE query);
 *  3. inserts the rest in ONE JSONEachRow insert (one MergeTree part);
 *  4. if ClickHouse refuses the data anyway, halves the batch until the culprits are single rows,
 *     returns those as rejected and stores the rest.
 * It throws only when ClickHouse is unavailable; a retry of the same batch is safe, because step 2
 * finds whatever a failed attempt managed to store.
 *
 * An insert the client gave up on (CLICKHOUSE_REQUEST_TIMEOUT_MS, a reset connection) may still be
 * running on the server, and finish after the retry's step 2 looked (issue 9, finding 3: that
 * stored the same rows twice). So every insert carries a query id made from the batch's Kafka
 * positions (the same on every attempt of the same rows), and after an insert ended without an
 * answer the next write first waits until no query with that id runs on the server
 * (system.processes) — then step 2 sees what it stored. Should it start again meanwhile, the
 * server refuses the second query with the same id (code 216, retried).
 */
import { createHash } from 'node:crypto';
import type { UserLoginEvent } from './codec.js';
import { parseTimestamp } from './codec.js';
import {
  clickhouseErrorCode,
  clickhouseErrorText,
  clickhouseNow,
  isClickHouseDataError,
  readEventTimeType,
  type ClickHouseClient,
  type EventTimeType,
} from './clickhouse.js';
import { StreamerError } from './errors.js';
import type { Logger } from './logger.js';

export interface SinkInput<T> {
  event: UserLoginEvent;
  topic: string;
  partition: number;
  offset: string;
  ref: T;
}

export interface Rejection<T> {
  ref: T;
  reason: string;
}

export interface WriteResult<T> {
  inserted: number;
  /** The refs of the inputs inserted by this write. */
  stored: T[];
  /** Inputs whose id was already in ClickHouse or earlier in the same batch. */
  duplicates: number;
  rejected: Rejection<T>[];
}

/** A row of user_login as JSONEachRow carries it. */
export interface ClickHouseRow {
  id: number;
  username: string | null;
  event_type: string | null;
  event_time: string | null;
  kafka_partition: number;
  kafka_offset: number;
  ingested_at: string;
}

/**
 * The ids of the batch that the table already has. `{name: Type}` parameters do not exist on 18.16
 * ("Unknown setting param_…"), so the condition is SQL text — built only from integers that
 * `idConditions` checks are safe non-negative integers.
 */
const EXISTING_IDS = (condition: string) => `SELECT id FROM user_login WHERE ${condition}`;

/** Query ids of inserts that ended without an answer: they may still run on the server. */
const RUNNING = (ids: readonly string[]) => `SELECT query_id AS q, toString(elapsed) AS s FROM system.processes WHERE query_id IN (${ids.map((i) => `'${i}'`).join(',')})`;

/** The query id of a batch's insert: from its Kafka positions, so every attempt has the same. */
export function insertQueryId(inputs: readonly { topic: string; partition: number; offset: string }[], part = ''): string {
  const h = createHash('sha256');
  for (const i of inputs) h.update(`${i.topic}\u0000${i.partition}:${i.offset};`);
  return `streamer-insert-${h.digest('hex').slice(0, 32)}${part}`;
}

const QUERY_ID = /^streamer-insert-[0-9a-f]{32}[0-9a-z-]*$/;

export class ClickHouseSink<T> {
  /** Inserts that ended without an answer (see the module comment). */
  private readonly unanswered = new Set<string>();

  private constructor(
    private readonly client: ClickHouseClient,
    readonly eventTimeType: EventTimeType,
    private readonly log: Logger,
  ) {}

  /** Records dead letters in streamer_dead_letters (sql/clickhouse/0002), for verify and status. */
  async recordDeadLetters(letters: readonly { topic: string; partition: number; offset: string; key: Buffer | null; reason: string }[]): Promise<void> {
    if (letters.length === 0) return;
    const at = clickhouseNow();
    await this.client.insert({
      table: 'streamer_dead_letters',
      values: letters.map((l) => ({ topic: l.topic, partition: l.partition, offset: l.offset, key: l.key?.toString('utf8') ?? '', reason: l.reason, dead_lettered_at: at })),
      format: 'JSONEachRow',
    });
  }

  /** Reads the table's `event_time` type; a StreamerError when the table is not there. */
  static async open<T>(client: ClickHouseClient, database: string, logger: Logger): Promise<ClickHouseSink<T>> {
    const log = logger.child({ component: 'sink' });
    const column = await readEventTimeType(client);
    if (column === null) {
      throw new StreamerError(`ClickHouse table ${database}.user_login does not exist — create it with "streamer migrate"`);
    }
    if (column.type === null) {
      throw new StreamerError(`ClickHouse column ${database}.user_login.event_time has type ${column.raw}; expected DateTime or DateTime64`);
    }
    const dlt = await (await client.query({ query: "SELECT toString(count()) AS n FROM system.tables WHERE database = currentDatabase() AND name = 'streamer_dead_letters'", format: 'JSONEachRow' })).json<{ n: string }>();
    if (dlt[0]?.n === '0') throw new StreamerError(`ClickHouse table ${database}.streamer_dead_letters does not exist — create it with "streamer migrate"`);
    if (column.type.kind === 'DateTime' || column.type.scale < 6) {
      log.warn({ eventTimeType: column.raw }, 'event_time has no microseconds in ClickHouse: sub-second digits are dropped');
    }
    return new ClickHouseSink<T>(client, column.type, log);
  }

  async write(inputs: readonly SinkInput<T>[]): Promise<WriteResult<T>> {
    const rejected: Rejection<T>[] = [];
    const mapped: { row: ClickHouseRow; ref: T }[] = [];
    const ingestedAt = clickhouseNow();
    for (const input of inputs) {
      const r = toClickHouseRow(input, this.eventTimeType, ingestedAt);
      if (r.ok) mapped.push({ row: r.row, ref: input.ref });
      else rejected.push({ ref: input.ref, reason: r.reason });
    }
    const unique = firstOfEachId(mapped, (m) => m.row.id);
    await this.waitForUnanswered();
    const existing = await this.existingIds(unique.map((m) => m.row.id));
    const fresh = unique.filter((m) => !existing.has(m.row.id));
    const duplicates = mapped.length - fresh.length;
    const refusedBefore = new Set(rejected.map((r) => r.ref));
    await this.insertSplitting(fresh, rejected, insertQueryId(inputs));
    const refused = new Set(rejected.map((r) => r.ref).filter((ref) => !refusedBefore.has(ref)));
    const stored = fresh.filter((f) => !refused.has(f.ref)).map((f) => f.ref);
    if (duplicates > 0) this.log.debug({ duplicates }, 'ids already stored were skipped');
    return { inserted: stored.length, stored, duplicates, rejected };
  }

  private async existingIds(ids: number[]): Promise<Set<number>> {
    const found = new Set<number>();
    // Usually one query; more only when the ids are so scattered that one would pass ~200 KB
    // (18.16's max_query_size is 256 KiB).
    for (const condition of idConditions(ids)) {
      const rs = await this.client.query({ query: EXISTING_IDS(condition), format: 'JSONEachRow' });
      // UInt64 comes back as a JSON string ("42"): ids are safe integers (codec.ts checks).
      for (const r of await rs.json<{ id: string | number }>()) found.add(Number(r.id));
    }
    return found;
  }

  /** Waits until no insert that ended without an answer still runs on the server. */
  private async waitForUnanswered(): Promise<void> {
    if (this.unanswered.size === 0) return;
    const ids = [...this.unanswered].filter((q) => QUERY_ID.test(q));
    for (let polls = 0; ; polls++) {
      const running = await (await this.client.query({ query: RUNNING(ids), format: 'JSONEachRow' })).json<{ q: string; s: string }>();
      if (running.length === 0) break;
      if (polls % 50 === 0) {
        this.log.warn({ queryIds: running.map((r) => r.q), elapsedSeconds: running.map((r) => Number(r.s)) }, 'an insert the client gave up on still runs on ClickHouse: waiting for it before looking at what is stored');
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    this.unanswered.clear();
  }

  private async insertSplitting(items: { row: ClickHouseRow; ref: T }[], rejected: Rejection<T>[], queryId: string): Promise<void> {
    if (items.length === 0) return;
    try {
      await this.client.insert({ table: 'user_login', values: items.map((i) => i.row), format: 'JSONEachRow', query_id: queryId });
    } catch (err) {
      const code = clickhouseErrorCode(err);
      // No answer (timeout, reset), or "a query with this id is already running" (216): the
      // server may have, or be running, this insert.
      if (code === null || code === 216) this.unanswered.add(queryId);
      if (!isClickHouseDataError(err)) throw err;
      if (items.length === 1) {
        const item = items[0] as { row: ClickHouseRow; ref: T };
        this.log.warn({ id: item.row.id, err: clickhouseErrorText(err) }, 'ClickHouse refused a row');
        rejected.push({ ref: item.ref, reason: `ClickHouse refused the row: ${clickhouseErrorText(err)}` });
        return;
      }
      // One bad row fails a whole insert (nothing of it is stored): halve until it is alone.
      this.log.info({ rows: items.length, err: clickhouseErrorText(err) }, 'ClickHouse refused a batch: splitting it to find the bad rows');
      const mid = Math.ceil(items.length / 2);
      await this.insertSplitting(items.slice(0, mid), rejected, `${queryId}-a`);
      await this.insertSplitting(items.slice(mid), rejected, `${queryId}-b`);
    }
  }
}

export type RowResult = { ok: true; row: ClickHouseRow } | { ok: false; reason: string };

export function toClickHouseRow(input: Omit<SinkInput<unknown>, 'ref'>, type: EventTimeType, ingestedAt: string): RowResult {
  const t = formatEventTime(input.event.event_time, type);
  if (!t.ok) return t;
  return {
    ok: true,
    row: {
      id: input.event.id,
      username: input.event.username,
      event_type: input.event.event_type,
      event_time: t.value,
      kafka_partition: input.partition,
      kafka_offset: Number(input.offset),
      ingested_at: ingestedAt,
    },
  };
}

/**
 * What each type can hold, by whole years. DateTime is a UInt32 of seconds: 1970-01-01 00:00:00
 * to 2106-02-07 06:28:15; 2105-12-31 23:59:59 is the safe end the field notes measured (beyond
 * it 18.16 wraps around silently). DateTime64 covers 1900-01-01 to 2299-12-31 on ClickHouse
 * 22.x and later (20.x/21.x had 1925–2283; the supported servers are 24.x+).
 */
export function eventTimeRange(type: EventTimeType): { minYear: number; maxYear: number } {
  return type.kind === 'DateTime' ? { minYear: 1970, maxYear: 2105 } : { minYear: 1900, maxYear: 2299 };
}

export function describeEventTimeType(type: EventTimeType): string {
  return type.kind === 'DateTime' ? "DateTime('UTC')" : `DateTime64(${type.scale}, 'UTC')`;
}

/**
 * The JSONEachRow text of `event_time` for the column's type: DateTime gets whole seconds
 * (18.16 fails the WHOLE insert on a fraction), DateTime64(s) gets `s` fractional digits
 * (truncated, never rounded, so a value never moves to the next second).
 */
export function formatEventTime(text: string | null, type: EventTimeType): { ok: true; value: string | null } | { ok: false; reason: string } {
  if (text === null) return { ok: true, value: null };
  const p = parseTimestamp(text);
  if (!p) return { ok: false, reason: `event_time is not a timestamp: ${JSON.stringify(text).slice(0, 100)}` };
  const { minYear, maxYear } = eventTimeRange(type);
  if (p.year < minYear || p.year > maxYear) {
    return {
      ok: false,
      reason: `event_time ${text} is outside what ClickHouse's ${describeEventTimeType(type)} can store (${minYear}-01-01 00:00:00 to ${maxYear}-12-31 23:59:59)`,
    };
  }
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const base = `${pad(p.year, 4)}-${pad(p.month)}-${pad(p.day)} ${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}`;
  if (type.kind === 'DateTime' || type.scale === 0) return { ok: true, value: base };
  return { ok: true, value: `${base}.${p.micros.padEnd(type.scale, '0').slice(0, type.scale)}` };
}

/** The first item of each key, in order. */
export function firstOfEachId<I>(items: readonly I[], id: (item: I) => number): I[] {
  const seen = new Set<number>();
  return items.filter((item) => {
    const k = id(item);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * WHERE conditions matching exactly `ids`, each at most ~`maxChars` long (18.16's max_query_size
 * is 256 KiB). The longest runs of consecutive ids become `id BETWEEN a AND b` — a batch gathered
 * from all partitions of the topic is mostly a few runs, so the text stays small — but at most
 * `maxRanges` of them: 18.16 analyses an OR of ranges in quadratic time (measured: 500 ranges
 * 0.27 s, 2000 ranges 4.4 s), while `id IN (…)` of 20,000 scattered ids takes 0.08 s.
 */
export function idConditions(ids: readonly number[], maxChars = 200_000, maxRanges = 16, minRun = 16): string[] {
  for (const id of ids) {
    // The guard that makes interpolating them safe.
    if (!Number.isSafeInteger(id) || id < 0) throw new Error(`id ${String(id)} is not a non-negative safe integer`);
  }
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const runs: { from: number; to: number; start: number; end: number }[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === (sorted[j] as number) + 1) j++;
    if (j - i + 1 >= minRun) runs.push({ from: sorted[i] as number, to: sorted[j] as number, start: i, end: j });
    i = j + 1;
  }
  const ranges = runs.sort((a, b) => b.end - b.start - (a.end - a.start)).slice(0, maxRanges);
  const inRange = new Set<number>();
  for (const r of ranges) for (let k = r.start; k <= r.end; k++) inRange.add(k);
  const out: string[] = [];
  let terms = ranges.sort((a, b) => a.from - b.from).map((r) => `id BETWEEN ${r.from} AND ${r.to}`);
  let singles: number[] = [];
  let size = terms.join(' OR ').length;
  const emit = () => {
    if (singles.length > 0) terms.push(`id IN (${singles.join(',')})`);
    if (terms.length > 0) out.push(terms.join(' OR '));
    terms = [];
    singles = [];
    size = 0;
  };
  sorted.forEach((id, k) => {
    if (inRange.has(k)) return;
    const len = String(id).length + 1;
    if (size + len > maxChars) emit();
    singles.push(id);
    size += len;
  });
  emit();
  return out;
}
