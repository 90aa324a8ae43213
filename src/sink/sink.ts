/**
 * The ClickHouse writer of one table: messages in, rows out — each (key, version) at most
 * once, the newest version of every key kept. Knows nothing of Kafka: every input carries an
 * opaque `ref` that comes back with the inputs it could not store, so the caller can dead-letter
 * the original message.
 *
 * The table is described by ClickHouse itself (system.columns), not by PostgreSQL: the consumer
 * needs no access to PostgreSQL, and a table made on 18.16 keeps working after an upgrade (each
 * value is written for its column's real type, src/tables/ch-types.ts).
 *
 * One `write` of a batch:
 *  1. reads every message — by a shape learnt from earlier messages of the table, straight from
 *     its bytes into the row's line (message-shapes.ts, rows.ts), else by JSON.parse
 *     (decodeMessage) — and maps every upsert and delete to a row (a delete: its key, `_deleted`
 *     1, the other columns NULL or their type's zero), refusing values the column cannot hold
 *     (always the JSON.parse way, which words the reason); every line goes into one Body, the
 *     insert's bytes;
 *  2. keeps, per key, the message of the highest version (older ones could never win);
 *  3. drops those whose version ClickHouse already has for that key, or a newer one (ONE query,
 *     only for the rows at or below their partition's watermark: see below);
 *  4. inserts the rest in ONE TabSeparated insert (one MergeTree part; ch-types.ts writes the
 *     fields), its body the written bytes;
 *  5. if ClickHouse refuses the data anyway, halves the batch until the culprits are single rows,
 *     returns those as rejected and stores the rest;
 *  6. applies truncate markers: every live row of an older version gets a delete of the marker's
 *     version (the consumer of each partition does so at its own marker; see README).
 * It throws only when ClickHouse is unavailable (or refuses for good); a retry of the same batch
 * is safe, because step 3 finds whatever a failed attempt managed to store.
 *
 * Watermarks (issue 14): the query of step 3 cost as much ClickHouse and consumer time as the
 * insert, and during a drain it finds nothing — every message is newer than anything stored. A
 * key's versions all travel in one partition, and only the member that owns the partition writes
 * them. So per partition the sink keeps a version at or above every version ClickHouse can hold
 * for that partition's keys: the table's max(_version), read once after each change of assignment
 * (the floor), raised to each batch's versions before its insert is sent (so a failed or
 * unanswered insert is looked up on the retry, like before). A row above its partition's
 * watermark cannot be stored yet and skips the query; only rows at or below it (a redelivery, a
 * second producer's late batch) are looked up. A TRUNCATE's deletes, which cover every partition,
 * raise every watermark.
 *
 * An insert the client gave up on (CLICKHOUSE_REQUEST_TIMEOUT_MS, a reset connection) may still
 * run on the server and finish after the retry's step 3 looked (issue 9, finding 3). So every
 * insert carries a query id made from its batch's Kafka positions (the same on every attempt), and
 * after an insert ended without an answer the next write first waits until no query with that id
 * runs (system.processes); should it start again meanwhile, the server refuses the second query
 * with the same id (code 216, retried). On servers with insert_deduplication_token (22.2+) the id
 * is also the token, and the server itself drops a late duplicate.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';
import { BufferPool, Lease } from '../common/bytes.js';
import { chunkBy } from '../common/chunks.js';
import { StreamerError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { chCodec, Refused, type CodecContext } from '../tables/ch-types.js';
import { decodeMessage, type DecodedMessage } from '../tables/codec.js';
import { chIdent, chLiteral } from '../tables/identifiers.js';
import { NULL_FLAG_SUFFIX } from '../tables/pg-types.js';
import type { Capabilities } from '../tables/server.js';
import { META_COLUMNS } from '../tables/spec.js';
import { clickhouseErrorCode, clickhouseErrorText, clickhouseNow, isClickHouseDataError } from './clickhouse.js';
import { TABLE_COLUMNS } from './ddl.js';
import { messageShape } from './message-shapes.js';
import { Body, integerKey, keyOf, keyValuesOf, LearntShape, rowKey, writeLineEnd, type Column, type Row, type RowKey } from './rows.js';

export interface SinkInput<T> {
  /**
   * The message, decoded — or, without it, `value`: the raw bytes, which the sink reads itself,
   * by a learnt message shape when it can (message-shapes.ts), else as decodeMessage() does; a
   * value that is no message comes back rejected with decodeMessage()'s reason.
   */
  message?: DecodedMessage;
  value?: Buffer | null;
  /**
   * Or the value as bytes[valueAt, valueEnd) of a larger buffer (a fetch's), read where it is;
   * `value` then gives the same bytes. A valueAt below 0 is a null value (a FetchedRecord's).
   */
  bytes?: Buffer | null;
  valueAt?: number;
  valueEnd?: number;
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
  /** Rows inserted (upserts and deletes). */
  inserted: number;
  /** The refs of the inputs inserted by this write. */
  stored: T[];
  /** Inputs not inserted because ClickHouse had that version of the key or a newer one, or the batch did. */
  duplicates: number;
  /** Truncate markers applied. */
  truncates: number;
  rejected: Rejection<T>[];
}

/**
 * The writes' insert bodies, reused (bytes.ts BufferPool), one pool for every table's sink: a write
 * gives its body back once all its inserts were answered; a write that throws leaves it to the GC
 * (an insert may still be sending it).
 */
const BODIES = new BufferPool(4, 8 * 1024 * 1024);

/** Shapes a sink learns at most (a table's messages have two: its upserts and its deletes). */
const MAX_SHAPES = 8;
/** Field lists a sink tries to learn a shape from, at most (each costs a read of the message). */
const MAX_SHAPE_ATTEMPTS = 32;

/** Query ids of inserts that ended without an answer: they may still run on the server. */
const RUNNING = (ids: readonly string[]) => `SELECT query_id AS q, toString(elapsed) AS s FROM system.processes WHERE query_id IN (${ids.map(chLiteral).join(',')})`;

/** How long an abandoned insert must stay out of system.processes before the retry looks at what is stored. */
export const UNANSWERED_SETTLE_MS = 1000;

/** The columns an insert lists, in the order of a row's fields: each column (and its null flag), then the meta columns. */
const INSERT_COLUMNS = (columns: readonly Column[]) =>
  [...columns.flatMap((c) => (c.nullFlag ? [c.name, c.nullFlag] : [c.name])), ...META_COLUMNS].map(chIdent).join(', ');

/** The highest version stored in a table (every row, deletes included): the watermarks' floor. */
const MAX_VERSION = (table: string) => `SELECT toString(max(_version)) AS v FROM ${table}`;

/**
 * The query id of a batch's insert: from its Kafka positions, so every attempt has the same. Per
 * topic-partition its count, first and last offsets and a checksum of all of them (one hash
 * update per partition, not per message: ~2 % of the consumer's CPU in the drain).
 */
export function insertQueryId(table: string, inputs: readonly { topic: string; partition: number; offset: string }[], part = ''): string {
  type Part = { topic: string; partition: number; first: string; last: string; count: number; sum: number };
  const parts = new Map<string, Part>();
  let p: Part | undefined; // the run of one partition the last input was in
  for (const i of inputs) {
    if (!p || p.partition !== i.partition || p.topic !== i.topic) {
      const key = `${i.topic}\u0000${i.partition}`;
      p = parts.get(key);
      if (!p) {
        parts.set(key, (p = { topic: i.topic, partition: i.partition, first: i.offset, last: i.offset, count: 0, sum: 0 }));
      }
    }
    // Offsets are below 2^53 in practice; the checksum only needs to be the same for the same list.
    p.last = i.offset;
    p.count++;
    p.sum = (p.sum * 31 + (Number(i.offset) % 2147483647)) % 2147483647;
  }
  const h = createHash('sha256');
  h.update(`${table}\u0000`);
  for (const [key, p] of parts) h.update(`${key}:${p.first}-${p.last}#${p.count}/${p.sum};`);
  return `streamer-insert-${h.digest('hex').slice(0, 32)}${part}`;
}

export class TableSink<T> {
  /** Inserts that ended without an answer (see the module comment). */
  private readonly unanswered = new Set<string>();
  private readonly table: string;
  private columnNameSet: Set<string>;
  /** `(col, …)` of the insert: the fields of a row, in order. */
  private insertColumns: string;
  /** max(_version) of the table as read after the last change of assignment; null: read it again. */
  private floor: number | null = null;
  /** Per Kafka partition: at or above every version stored for its keys since the floor was read. */
  private readonly watermarks = new Map<number, number>();
  /** Rows whose stored versions were looked up, and rows that skipped the lookup (for the bench and tests). */
  readonly lookups = { checked: 0, skipped: 0 };
  /** Messages read by a learnt shape, and by JSON.parse (for the tests). */
  readonly reads = { shape: 0, parsed: 0 };
  private shapes: LearntShape[] = [];
  private readonly shapeAttempts = new Set<string>();

  private constructor(
    private readonly client: ClickHouseClient,
    readonly database: string,
    readonly name: string,
    private columns: Column[],
    private readonly keys: Column[],
    private readonly caps: Capabilities,
    private readonly log: Logger,
  ) {
    this.table = `${chIdent(database)}.${chIdent(name)}`;
    this.columnNameSet = new Set(columns.map((c) => c.name));
    this.insertColumns = INSERT_COLUMNS(columns);
  }

  /** Reads the table from system.columns; a StreamerError naming what is wrong. */
  static async open<T>(client: ClickHouseClient, database: string, name: string, caps: Capabilities, logger: Logger): Promise<TableSink<T>> {
    const log = logger.child({ component: 'sink', table: name });
    const { columns, keys } = await TableSink.readColumns(client, database, name, caps, log);
    return new TableSink<T>(client, database, name, columns, keys, caps, log);
  }

  private static async readColumns(client: ClickHouseClient, database: string, name: string, caps: Capabilities, log: Logger): Promise<{ columns: Column[]; keys: Column[] }> {
    const all = await (await client.query({ query: TABLE_COLUMNS(database, name), format: 'JSONEachRow' })).json<{ name: string; type: string; sorting: number; kind: string }>();
    // Columns ClickHouse computes itself (MATERIALIZED, ALIAS) are not written.
    const rows = all.filter((r) => r.kind !== 'MATERIALIZED' && r.kind !== 'ALIAS');
    if (all.length === 0) throw new StreamerError(`ClickHouse table ${database}.${name} does not exist — create it with "streamer migrate"`);
    const names = new Set(rows.map((r) => r.name));
    if (!names.has('_version')) {
      throw new StreamerError(`ClickHouse table ${database}.${name} has no _version column (made before updates and deletes were replicated) — run "streamer migrate", which moves it to the new shape keeping every row`);
    }
    const ctx: CodecContext = { dateTimeYears: caps.dateTimeYears, date32Range: caps.dateRange };
    const columns: Column[] = [];
    for (const r of rows) {
      if ((META_COLUMNS as readonly string[]).includes(r.name) || r.name.endsWith(NULL_FLAG_SUFFIX)) continue;
      const codec = chCodec(r.type, ctx);
      if (!codec) throw new StreamerError(`ClickHouse column ${database}.${name}.${r.name} has type ${r.type}, which streamer does not write — was the table made by "streamer migrate"?`);
      const nullFlag = names.has(`${r.name}${NULL_FLAG_SUFFIX}`) ? `${r.name}${NULL_FLAG_SUFFIX}` : null;
      columns.push({ name: r.name, codec, nullFlag, key: Number(r.sorting) === 1 });
    }
    const keys = rows.filter((r) => Number(r.sorting) === 1).map((r) => columns.find((c) => c.name === r.name) as Column);
    if (keys.length === 0 || keys.some((k) => !k)) throw new StreamerError(`ClickHouse table ${database}.${name} has no usable sorting key — was it made by "streamer migrate"?`);
    for (const m of ['_deleted', '_kafka_partition', '_kafka_offset', '_ingested_at']) {
      if (!names.has(m)) throw new StreamerError(`ClickHouse table ${database}.${name} lacks the column ${m} — run "streamer migrate"`);
    }
    const dt = columns.filter((c) => /DateTime\(|DateTime$/.test(c.codec.type) && !/DateTime64/.test(c.codec.type));
    if (dt.length > 0) log.warn({ columns: dt.map((c) => c.name) }, 'timestamp columns without DateTime64 (ClickHouse before 20.1): sub-second digits are dropped');
    return { columns, keys };
  }

  /**
   * Reads the columns again: "streamer migrate" added one (ALTER TABLE … ADD COLUMN in
   * PostgreSQL) while this consumer ran, and the producer now sends it.
   */
  private async reload(): Promise<void> {
    const { columns } = await TableSink.readColumns(this.client, this.database, this.name, this.caps, this.log);
    const added = columns.filter((c) => !this.columns.some((o) => o.name === c.name)).map((c) => c.name);
    this.columns = columns;
    this.columnNameSet = new Set(columns.map((c) => c.name));
    this.insertColumns = INSERT_COLUMNS(columns);
    this.shapes = []; // mapped onto the old columns
    this.shapeAttempts.clear();
    this.log.info({ added }, 'ClickHouse table columns read again');
  }

  /**
   * The consumer's partitions changed (or a topic may have been re-created): another member may
   * have stored versions of these partitions' keys meanwhile, so the floor is read again.
   */
  forgetWatermarks(): void {
    this.floor = null;
    this.watermarks.clear();
  }

  private async versionFloor(): Promise<number> {
    if (this.floor === null) {
      const rs = await this.client.query({ query: MAX_VERSION(this.table), format: 'JSONEachRow' });
      this.floor = Number((await rs.json<{ v: string }>())[0]?.v ?? 0);
    }
    return this.floor;
  }

  private watermark(partition: number, floor: number): number {
    return Math.max(this.watermarks.get(partition) ?? -1, floor);
  }

  private raiseWatermark(partition: number, version: number): void {
    if (version > (this.watermarks.get(partition) ?? -1)) this.watermarks.set(partition, version);
  }

  /** The rows at or below their partition's watermark: those whose stored versions must be looked up. */
  private notAboveWatermarks(rows: readonly Row<T>[], floor: number): Row<T>[] {
    const marks = new Map<number, number>(); // this batch's partitions' watermarks, read once each
    const toCheck: Row<T>[] = [];
    for (const r of rows) {
      let mark = marks.get(r.partition);
      if (mark === undefined) marks.set(r.partition, (mark = this.watermark(r.partition, floor)));
      if (r.version <= mark) toCheck.push(r);
    }
    return toCheck;
  }

  /** Each partition's watermark up to the highest version of `rows` in it. */
  private raiseWatermarks(rows: readonly Row<T>[]): void {
    const highest = new Map<number, number>();
    for (const r of rows) if (r.version > (highest.get(r.partition) ?? -1)) highest.set(r.partition, r.version);
    for (const [partition, version] of highest) this.raiseWatermark(partition, version);
  }

  /** The replicated columns, for checks of the message shape. */
  columnNames(): string[] {
    return this.columns.map((c) => c.name);
  }

  async write(inputs: readonly SinkInput<T>[]): Promise<WriteResult<T>> {
    const rejected: Rejection<T>[] = [];
    const ingestedAt = clickhouseNow();
    // 1a. read each message. (The loops are methods of their own, not of this async function: V8
    // compiles a long loop of an async function anew on every call — 80 times in 120 writes.)
    const lease = new Lease(BODIES);
    const { body, fast, decoded } = this.readMessages(inputs, ingestedAt, rejected, lease);
    // A field that is no column: read the columns again (migrate may have added it), then check
    // each message — the rows read by shape too, which were made for the old columns.
    const unknownFields = decoded.some((m) => m !== null && m.op !== 'truncate' && this.unknownField(m) !== null);
    if (unknownFields) {
      await this.reload();
      for (let i = 0; i < inputs.length; i++) {
        if (fast[i] === null) continue;
        fast[i] = null;
        const d = decodeMessage((inputs[i] as SinkInput<T>).value ?? null);
        if (d.ok) decoded[i] = d.message;
      }
    }
    // 1b. rows; 2. the highest version per key
    const { newest, superseded, truncates } = this.newestRows(inputs, fast, decoded, body, ingestedAt, unknownFields, rejected);
    // 3. what ClickHouse has, for the rows not above their partition's watermark
    await this.waitForUnanswered();
    const floor = await this.versionFloor();
    const rows = [...newest.values()];
    const toCheck = this.notAboveWatermarks(rows, floor);
    this.lookups.checked += toCheck.length;
    this.lookups.skipped += rows.length - toCheck.length;
    const stored = await this.storedVersions(toCheck);
    const fresh = stored.size === 0 ? rows : rows.filter((r) => r.version > (stored.get(r.key) ?? -1));
    const duplicates = newest.size - fresh.length + superseded;
    // Before the insert is sent: should it fail or its answer be lost, the retry looks these up.
    this.raiseWatermarks(fresh);
    // 4./5. insert
    const rejectedBefore = rejected.length;
    await this.insertSplitting(fresh, body, rejected, insertQueryId(this.name, inputs));
    const refused = new Set(rejected.slice(rejectedBefore).map((r) => r.ref));
    const storedRefs = (refused.size === 0 ? fresh : fresh.filter((f) => !refused.has(f.ref))).map((f) => f.ref);
    // 6. truncate markers, after the rows: only versions older than the marker are deleted
    for (const t of truncates) await this.truncateBefore(t.version, t.partition, t.offset);
    if (duplicates > 0) this.log.debug({ duplicates }, 'versions already stored (or superseded in the batch) were skipped');
    lease.end(); // every insert of the body was answered (a write that throws leaves its body to the GC)
    return { inserted: storedRefs.length, stored: storedRefs, duplicates, truncates: truncates.length, rejected };
  }

  /** Step 1a: each message by a learnt shape straight into its row (written to the body), else decoded (JSON.parse). */
  private readMessages(inputs: readonly SinkInput<T>[], ingestedAt: string, rejected: Rejection<T>[], lease: Lease) {
    let size = 0;
    for (const input of inputs) size += (input.bytes && (input.valueAt as number) >= 0 ? (input.valueEnd as number) - (input.valueAt as number) : (input.value?.length ?? 64)) + 48;
    const body = new Body(size, lease);
    const fast = new Array<Row<T> | null>(inputs.length).fill(null);
    const decoded = new Array<DecodedMessage | null>(inputs.length).fill(null);
    for (let i = 0; i < inputs.length; i++) {
      const input = inputs[i] as SinkInput<T>;
      if (input.message) {
        decoded[i] = input.message;
        continue;
      }
      let row: Row<T> | null = null;
      const inPlace = input.bytes && (input.valueAt as number) >= 0;
      const bytes = inPlace ? input.bytes : input.value;
      if (bytes) {
        const from = inPlace ? (input.valueAt as number) : 0;
        const to = inPlace ? (input.valueEnd as number) : bytes.length;
        for (let k = 0; row === null && k < this.shapes.length; k++) row = (this.shapes[k] as LearntShape).row(bytes, from, to, body, input.partition, input.offset, ingestedAt, input.ref);
      }
      if (row) {
        fast[i] = row;
        this.reads.shape++;
        continue;
      }
      const value = input.value;
      const d = decodeMessage(value ?? null);
      this.reads.parsed++;
      if (!d.ok) {
        rejected.push({ ref: input.ref, reason: d.reason });
        continue;
      }
      decoded[i] = d.message;
      if (value) this.learnShape(d.message, value);
    }
    return { body, fast, decoded };
  }

  /** Steps 1b and 2: the rows of the decoded messages too, then the newest row of each key; truncate markers apart. */
  private newestRows(inputs: readonly SinkInput<T>[], fast: readonly (Row<T> | null)[], decoded: readonly (DecodedMessage | null)[], body: Body, ingestedAt: string, checkFields: boolean, rejected: Rejection<T>[]) {
    const newest = new Map<RowKey, Row<T>>();
    const truncates: Array<{ version: number; partition: number; offset: string }> = [];
    let superseded = 0;
    for (let i = 0; i < inputs.length; i++) {
      const input = inputs[i] as SinkInput<T>;
      let row = fast[i] as Row<T> | null;
      if (row === null) {
        const message = decoded[i];
        if (!message) continue;
        if (message.op === 'truncate') {
          truncates.push({ version: message.version, partition: input.partition, offset: input.offset });
          continue;
        }
        try {
          row = this.row(input, message, body, ingestedAt, checkFields);
        } catch (err) {
          if (!(err instanceof Refused)) throw err;
          rejected.push({ ref: input.ref, reason: err.message });
          continue;
        }
      }
      const seen = newest.get(row.key);
      if (seen && seen.version >= row.version) superseded++;
      else {
        if (seen) superseded++;
        newest.set(row.key, row);
      }
    }
    return { newest, superseded, truncates };
  }

  /**
   * Learns the shape of a message read the slow way, if the table's messages can be read by it:
   * every member a column, every key column present. Kept only if it reads the message.
   */
  private learnShape(message: DecodedMessage, value: Buffer): void {
    if (message.op === 'truncate' || this.shapes.length >= MAX_SHAPES) return;
    const fields = Object.keys(message.fields);
    const signature = `${message.op}\u0000${fields.join('\u0000')}`;
    if (this.shapeAttempts.has(signature) || this.shapeAttempts.size >= MAX_SHAPE_ATTEMPTS) return;
    this.shapeAttempts.add(signature);
    if (fields.some((f) => !this.columnNameSet.has(f))) return;
    // A key stored as an array has no SQL literal (the slow way refuses it).
    if (this.keys.some((k) => k.codec.type.includes('Array('))) return;
    if (!this.keys.every((k) => fields.includes(k.name))) return;
    const learnt = new LearntShape(messageShape(fields), this.columns, this.keys);
    if (learnt.matches(value)) this.shapes.push(learnt);
  }

  /** A field of the message that is not a column of the table, or null. */
  private unknownField(message: DecodedMessage): string | null {
    for (const f in message.fields) if (!this.columnNameSet.has(f)) return f;
    return null;
  }

  /** One TabSeparated line for a decoded upsert or delete, written to `body`. Throws Refused. */
  private row(input: SinkInput<T>, message: DecodedMessage, body: Body, ingestedAt: string, checkFields: boolean): Row<T> {
    const { op, version, fields } = message;
    const unknown = checkFields ? this.unknownField(message) : null;
    if (unknown !== null) {
      // The producer replicates a column this table lacks (even after reading its columns again):
      // writing without it would store wrong data. Stop — retrying cannot help; migrate adds it.
      throw new StreamerError(`messages of ${input.topic} carry the column ${JSON.stringify(unknown)}, which ClickHouse table ${this.database}.${this.name} lacks — run "streamer migrate" (it adds the column), then start the consumer again`);
    }
    const keyValues = this.keys.map((k) => {
      const v = fields[k.name];
      if (v === undefined || v === null) throw new Refused(`the message lacks the key column ${k.name}`);
      return v;
    });
    // Checked here, so that a key ClickHouse cannot be asked about is refused with its reason.
    this.keyLiterals(keyValues);
    const out: string[] = [];
    const isDelete = op === 'delete';
    for (const c of this.columns) {
      const v = isDelete && !c.key ? undefined : fields[c.name];
      let text: string;
      if (v === undefined) text = c.codec.zero;
      else {
        try {
          text = v === null && c.nullFlag ? '[]' : c.codec.write(v);
        } catch (err) {
          if (err instanceof Refused) throw new Refused(`${c.name}: ${err.message}`);
          throw err;
        }
      }
      out.push(text, c.nullFlag ? (v === null || v === undefined ? '\t1\t' : '\t0\t') : '\t');
    }
    const start = body.length;
    body.utf8(out.join(''));
    body.ascii(String(version));
    writeLineEnd(body, isDelete, input.partition, input.offset, ingestedAt);
    return { key: keyOf(this.keys, keyValues), partition: input.partition, offset: input.offset, keyValues, version, start, end: body.length, ref: input.ref };
  }

  /** The key's values as SQL literals of their columns' types. Throws Refused. */
  private keyLiterals(keyValues: readonly unknown[]): string[] {
    return this.keys.map((k, i) => {
      try {
        return k.codec.literal(keyValues[i]);
      } catch (err) {
        if (err instanceof Refused) throw new Refused(`${k.name}: ${err.message}`);
        throw err;
      }
    });
  }

  /** Per key of `rows`, the highest version ClickHouse holds (rows without FINAL: deletes included). */
  private async storedVersions(rows: Row<T>[]): Promise<Map<RowKey, number>> {
    const found = new Map<RowKey, number>();
    if (rows.length === 0) return found;
    const intKey = integerKey(this.keys);
    const keyExpr = this.keys.length === 1 ? chIdent((this.keys[0] as Column).name) : `(${this.keys.map((k) => chIdent(k.name)).join(', ')})`;
    // toString: every key type comes back as text, which canon() reads like a message's value.
    // Aliases that no column can be called (ClickHouse resolves an alias before a column of the same name).
    const select = this.keys.map((k, i) => `toString(${chIdent(k.name)}) AS __streamer_k${i}`).join(', ');
    // Usually one query; more only when the keys would pass ~200 KB (18.16's max_query_size is 256 KiB).
    const literal = (r: Row<T>) => {
      const ls = this.keyLiterals(keyValuesOf(r));
      return ls.length === 1 ? (ls[0] as string) : `(${ls.join(', ')})`;
    };
    for (const list of chunkByLength(rows.map(literal), 200_000)) {
      const rs = await this.client.query({
        query: `SELECT ${select}, toString(max(_version)) AS __streamer_v FROM ${this.table} WHERE ${keyExpr} IN (${list.join(',')}) GROUP BY ${this.keys.map((k) => chIdent(k.name)).join(', ')}`,
        format: 'JSONEachRow',
      });
      for (const r of await rs.json<Record<string, unknown>>()) {
        const key = rowKey(intKey, this.keys.map((k, i) => k.codec.canon(r[`__streamer_k${i}`])).join('\u0000'));
        found.set(key, Number(r.__streamer_v));
      }
    }
    return found;
  }

  /**
   * Waits until no insert that ended without an answer still runs on the server — seen so on
   * polls UNANSWERED_SETTLE_MS apart: a server that was frozen (SIGSTOP, a stalled disk) answers
   * the first poll before it has read the abandoned request still waiting in its socket, and then
   * runs it (the CI fault suite, clickhouse-hung, 2026-11-26: 20 versions stored twice on 18.16).
   */
  private async waitForUnanswered(): Promise<void> {
    if (this.unanswered.size === 0) return;
    const ids = [...this.unanswered];
    let clearSince: number | null = null;
    for (let polls = 0; ; polls++) {
      const running = await (await this.client.query({ query: RUNNING(ids), format: 'JSONEachRow' })).json<{ q: string; s: string }>();
      if (running.length > 0) {
        clearSince = null;
        if (polls % 50 === 0) {
          this.log.warn({ queryIds: running.map((r) => r.q), elapsedSeconds: running.map((r) => Number(r.s)) }, 'an insert the client gave up on still runs on ClickHouse: waiting for it before looking at what is stored');
        }
      } else {
        clearSince ??= Date.now();
        if (Date.now() - clearSince >= UNANSWERED_SETTLE_MS) break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    this.unanswered.clear();
  }

  private async insertSplitting(rows: Row<T>[], body: Body, rejected: Rejection<T>[], queryId: string): Promise<void> {
    if (rows.length === 0) return;
    try {
      const r = await this.client.exec({
        query: `INSERT INTO ${this.table} (${this.insertColumns}) FORMAT TabSeparated`,
        values: Readable.from([body.of(rows)]),
        query_id: queryId,
        clickhouse_settings: this.caps.dedupToken ? { insert_deduplication_token: queryId } : {},
      });
      r.stream.resume(); // nothing to read; frees the socket
    } catch (err) {
      const code = clickhouseErrorCode(err);
      // No answer (timeout, reset), or "a query with this id is already running" (216): the
      // server may have, or be running, this insert.
      if (code === null || code === 216) this.unanswered.add(queryId);
      if (!isClickHouseDataError(err)) throw err;
      if (rows.length === 1) {
        const row = rows[0] as Row<T>;
        this.log.warn({ position: `${row.partition}:${row.offset}`, err: clickhouseErrorText(err) }, 'ClickHouse refused a row');
        rejected.push({ ref: row.ref, reason: `ClickHouse refused the row: ${clickhouseErrorText(err)}` });
        return;
      }
      // One bad row fails a whole insert (nothing of it is stored): halve until it is alone.
      this.log.info({ rows: rows.length, err: clickhouseErrorText(err) }, 'ClickHouse refused a batch: splitting it to find the bad rows');
      const mid = Math.ceil(rows.length / 2);
      await this.insertSplitting(rows.slice(0, mid), body, rejected, `${queryId}-a`);
      await this.insertSplitting(rows.slice(mid), body, rejected, `${queryId}-b`);
    }
  }

  /**
   * A TRUNCATE of version `version`: every key whose newest row is older and not deleted gets a
   * delete of that version. Runs for the marker of every partition (each consumer at its own), so
   * that rows of a partition read later are covered too; idempotent.
   */
  private async truncateBefore(version: number, partition: number, offset: string): Promise<void> {
    const keys = this.keys.map((k) => chIdent(k.name)).join(', ');
    // Deletes of this version for keys of every partition: no partition's watermark may stay below it.
    if (this.floor !== null) this.floor = Math.max(this.floor, version);
    for (const p of this.watermarks.keys()) this.raiseWatermark(p, version);
    await this.client.command({
      query:
        `INSERT INTO ${this.table} (${keys}, _version, _deleted, _kafka_partition, _kafka_offset, _ingested_at) ` +
        `SELECT ${keys}, ${version}, 1, ${partition}, ${offset}, ${chLiteral(clickhouseNow())} FROM ${this.table} FINAL WHERE _version < ${version} AND _deleted = 0`,
    });
    this.log.info({ version, partition }, 'the table was truncated in PostgreSQL: every older row is now deleted');
  }
}

/** Items joined with commas, cut into runs of at most ~`maxChars`. */
export function chunkByLength(items: readonly string[], maxChars: number): string[][] {
  return chunkBy(items, maxChars, (it) => it.length + 1);
}
