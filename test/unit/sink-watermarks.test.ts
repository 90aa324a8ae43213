// The sink's watermarks (issue 14): rows above their partition's watermark skip the query of the
// versions ClickHouse holds; everything at or below it — a redelivery, a retry after a failed
// insert, anything after a change of assignment — is looked up as before. A fake ClickHouse that
// stores inserted rows answers the queries; the real server: the consumer's integration tests
// (a replay under a new group adds nothing) and the fault suite (kill -9, frozen ClickHouse).
import type { Readable } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { TableSink, type SinkInput } from '../../src/sink/sink.js';
import { capabilities } from '../../src/tables/server.js';

const log = createLogger({ level: 'silent', secrets: [] });

/** The (id, _version) of each row of a TabSeparated insert (its statement and body), by the columns it lists. */
async function inserted(query: string, values: Readable): Promise<Array<{ id: number; version: number }>> {
  const columns = (/\(([^)]*)\) FORMAT TabSeparated$/.exec(query)?.[1] ?? '').split(', ').map((c) => c.replace(/`/g, ''));
  const [id, version] = [columns.indexOf('id'), columns.indexOf('_version')];
  if (id < 0 || version < 0) throw new Error(`not an insert of the table: ${query}`);
  const lines = Buffer.concat(await values.toArray()).toString('utf8').split('\n');
  return lines.filter(Boolean).map((line) => line.split('\t')).map((f) => ({ id: Number(f[id]), version: Number(f[version]) }));
}

/** A ClickHouse holding one table (id Int64 key, name String); it can be told to fail inserts. */
function fakeClickHouse() {
  const rows: Array<{ id: number; version: number }> = [];
  const queries: string[] = [];
  let failInserts = 0;
  /** A frozen server's abandoned insert: in system.processes from the 2nd poll, stored at the 3rd. */
  let late: { rows: Array<{ id: number; version: number }>; polls: number } | null = null;
  const answer = (data: unknown[]) => ({ json: async () => data });
  const client = {
    query: async ({ query }: { query: string }) => {
      if (query.includes('system.processes')) {
        if (!late) return answer([]);
        late.polls++;
        if (late.polls === 2) return answer([{ q: 'the abandoned insert', s: '0.1' }]);
        if (late.polls === 3) {
          rows.push(...late.rows);
          late = null;
        }
        return answer([]);
      }
      queries.push(query.startsWith('SELECT name, type') ? 'columns' : / AS v FROM /.test(query) ? 'max' : 'lookup');
      if (query.startsWith('SELECT name, type')) {
        return answer([
          { name: 'id', type: 'Int64', sorting: 1, kind: '' },
          { name: 'name', type: 'String', sorting: 0, kind: '' },
          ...['_version', '_deleted', '_kafka_partition', '_kafka_offset', '_ingested_at'].map((n) => ({ name: n, type: n === '_ingested_at' ? "DateTime('UTC')" : 'UInt64', sorting: 0, kind: '' })),
        ]);
      }
      if (/ AS v FROM /.test(query)) return answer([{ v: String(Math.max(0, ...rows.map((r) => r.version))) }]);
      const ids = new Set(((/IN \(([^)]*)\)/.exec(query)?.[1] ?? '').split(',')).map(Number));
      const max = new Map<number, number>();
      for (const r of rows) if (ids.has(r.id)) max.set(r.id, Math.max(max.get(r.id) ?? -1, r.version));
      return answer([...max].map(([id, v]) => ({ __streamer_k0: String(id), __streamer_v: String(v) })));
    },
    exec: async ({ query, values }: { query: string; values: Readable }) => {
      if (late && late.polls === -1) {
        late.polls = 0;
        late.rows = await inserted(query, values);
        throw new Error('Timeout error.');
      }
      if (failInserts > 0) {
        failInserts--;
        // The insert lands, but its answer is lost (a timeout): the worst case for a retry.
        rows.push(...(await inserted(query, values)));
        throw Object.assign(new Error('Timeout error.'), {});
      }
      rows.push(...(await inserted(query, values)));
      return { stream: { resume: () => {} } };
    },
    command: async () => ({}),
  };
  return {
    client: client as unknown as ClickHouseClient,
    rows,
    queries,
    failNextInsert: () => (failInserts = 1),
    freezeNextInsert: () => (late = { rows: [], polls: -1 }),
  };
}

const inputs = (list: Array<[id: number, version: number, partition: number]>): SinkInput<number>[] =>
  list.map(([id, version, partition], i) => ({ message: { op: 'upsert', version, fields: { id, name: `n${id}` } }, topic: 't', partition, offset: String(i), ref: i }));

async function open() {
  const ch = fakeClickHouse();
  const sink = await TableSink.open<number>(ch.client, 'db', 't', capabilities({ major: 18, minor: 16 }), log);
  ch.queries.length = 0;
  return { ch, sink };
}

describe('TableSink watermarks', () => {
  it('a drain of new versions: the floor is read once, then no row is looked up', async () => {
    const { ch, sink } = await open();
    for (let b = 0; b < 3; b++) {
      const r = await sink.write(inputs([[b * 10 + 1, b * 10 + 1, 0], [b * 10 + 2, b * 10 + 2, 1]]));
      expect(r.inserted).toBe(2);
    }
    expect(ch.queries).toEqual(['max']);
    expect(sink.lookups).toEqual({ checked: 0, skipped: 6 });
    expect(ch.rows).toHaveLength(6);
  });

  it('a redelivered batch is looked up and nothing is stored twice', async () => {
    const { ch, sink } = await open();
    await sink.write(inputs([[1, 5, 0], [2, 6, 1]]));
    const again = await sink.write(inputs([[1, 5, 0], [2, 6, 1], [3, 7, 1]]));
    expect(again).toMatchObject({ inserted: 1, duplicates: 2 });
    expect(ch.rows.map((r) => [r.id, r.version])).toEqual([[1, 5], [2, 6], [3, 7]]);
    expect(sink.lookups).toEqual({ checked: 2, skipped: 3 }); // versions 5 and 6: at their partitions' watermarks
  });

  it('another partition is not held back by one that is ahead', async () => {
    const { sink } = await open();
    await sink.write(inputs([[1, 100, 0]]));
    await sink.write(inputs([[2, 50, 1]])); // partition 1 below partition 0's versions: still nothing to look up
    expect(sink.lookups).toEqual({ checked: 0, skipped: 2 });
  });

  it('an insert whose answer was lost: the retry looks its rows up and skips what landed', async () => {
    const { ch, sink } = await open();
    ch.failNextInsert();
    await expect(sink.write(inputs([[1, 1, 0], [2, 2, 0]]))).rejects.toThrow('Timeout');
    const retry = await sink.write(inputs([[1, 1, 0], [2, 2, 0]]));
    expect(retry).toMatchObject({ inserted: 0, duplicates: 2 });
    expect(ch.rows).toHaveLength(2);
  });

  it('after a change of assignment the floor is read again: versions another member stored are found', async () => {
    const { ch, sink } = await open();
    await sink.write(inputs([[1, 1, 0]]));
    // Another member owned partition 1 meanwhile and stored version 9 of key 2.
    ch.rows.push({ id: 2, version: 9 });
    sink.forgetWatermarks();
    const r = await sink.write(inputs([[2, 9, 1]]));
    expect(r).toMatchObject({ inserted: 0, duplicates: 1 });
    expect(ch.queries.filter((q) => q === 'max')).toHaveLength(2);
  });

  it('a redelivery is looked up, not trusted: a version ClickHouse does not hold is stored again', async () => {
    const { ch, sink } = await open();
    await sink.write(inputs([[1, 5, 0]]));
    ch.rows.length = 0; // as if nothing had been stored: the lookup finds nothing, so it is inserted again
    await sink.write(inputs([[1, 5, 0]]));
    expect(sink.lookups.checked).toBe(1);
    expect(ch.rows).toHaveLength(1);
  });

  it('an insert abandoned on a frozen server that runs only after the first poll: the retry waits for it and stores nothing twice', async () => {
    const { ch, sink } = await open();
    ch.freezeNextInsert();
    await expect(sink.write(inputs([[1, 1, 0], [2, 2, 1]]))).rejects.toThrow('Timeout');
    const retry = await sink.write(inputs([[1, 1, 0], [2, 2, 1]]));
    expect(retry).toMatchObject({ inserted: 0, duplicates: 2 });
    expect(ch.rows.map((r) => [r.id, r.version])).toEqual([[1, 1], [2, 2]]);
  });

  it('one integer key is one key however it comes: read from the bytes as a number, parsed, or a string; and as ClickHouse answers it', async () => {
    const { ch, sink } = await open();
    ch.rows.push({ id: 7, version: 5 }, { id: 1234567890123456, version: 5 }); // stored before: the floor is 5
    const raw = (list: Array<[id: string, version: number]>): SinkInput<number>[] =>
      list.map(([id, version], i) => ({ value: Buffer.from(`{"id":${id},"name":"n","_op":"upsert","_version":${version}}`), topic: 't', partition: 0, offset: String(i), ref: i }));
    const result = await sink.write(raw([['"9"', 1], ['7', 4], ['"007"', 3], ['9', 6], ['1234567890123456', 4], ['"1234567890123456"', 5]]));
    // Key 7 (4 as a number, 3 as "007") and the 16-digit key (a string either way) are found stored
    // at 5; key 9 ("9", then 9) is new: only its newest version is inserted.
    expect(ch.rows.slice(2).map((r) => [r.id, r.version])).toEqual([[9, 6]]);
    expect(result).toMatchObject({ inserted: 1, duplicates: 5 });
    expect(sink.lookups.checked).toBe(2);
    expect(sink.reads.shape).toBeGreaterThan(0); // the bytes' own path was taken (the first message taught the shape)
  });
});
