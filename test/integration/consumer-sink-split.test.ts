// The sink against the real ClickHouse when ClickHouse refuses rows that passed our validation:
// it splits the batch, rejects only the culprits, stores the rest, and never stores a version twice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClickHouse, type ClickHouseClient } from '../../src/sink/clickhouse.js';
import { TableSink, type SinkInput } from '../../src/sink/sink.js';
import { capabilities } from '../../src/tables/server.js';
import { chQuery, testLogger } from '../support/clickhouse.js';
import { isolate, type Isolated } from '../support/isolation.js';

let iso: Isolated;
let client: ClickHouseClient;

beforeAll(async () => {
  iso = await isolate();
  client = createClickHouse(iso.config, testLogger(iso.config));
  // A stricter table than ours: usernames of at most 4 bytes, which the codec does not know of.
  await client.command({
    query: `CREATE TABLE user_login (id Int32, username Nullable(FixedString(4)), event_type Nullable(String),
            event_time Nullable(DateTime('UTC')), _version UInt64, _deleted UInt8, _kafka_partition UInt32, _kafka_offset UInt64,
            _ingested_at DateTime('UTC'))
            ENGINE = ReplacingMergeTree(_version) ORDER BY id`,
  });
  await client.command({
    query: `CREATE TABLE streamer_dead_letters (topic String, partition UInt32, offset UInt64, key String, reason String, dead_lettered_at DateTime('UTC'))
            ENGINE = ReplacingMergeTree ORDER BY (topic, partition, offset)`,
  });
});

afterAll(async () => {
  await client?.close();
  await iso?.cleanup();
});

const input = (id: number, username: string): SinkInput<string> => ({
  message: { op: 'upsert', version: id, fields: { id, username, event_type: 'login', event_time: '2024-01-01 00:00:00.000000' } },
  topic: 't',
  partition: 0,
  offset: String(id),
  ref: `ref-${id}`,
});

describe('sink: a batch ClickHouse refuses', () => {
  it('is split until the bad rows are alone; those are rejected with the reason, the rest stored once', async () => {
    const sink = await TableSink.open<string>(client, iso.config.clickhouseDatabase, 'user_login', capabilities({ major: 18, minor: 16 }), testLogger(iso.config));
    const batch = Array.from({ length: 20 }, (_, i) => input(i + 1, i === 6 || i === 13 ? 'too long' : `u${i + 1}`));
    const result = await sink.write(batch);
    expect(result.rejected.map((r) => r.ref)).toEqual(['ref-7', 'ref-14']);
    expect(result.rejected[0]?.reason).toMatch(/^ClickHouse refused the row: Code 131: Too large value for FixedString\(4\)/);
    expect(result.inserted).toBe(18);
    expect(result.stored).toHaveLength(18);
    expect(result.stored).not.toContain('ref-7');

    // The same batch again (a redelivery): nothing new is stored, the bad rows are refused again.
    const again = await sink.write(batch);
    expect(again).toMatchObject({ inserted: 0, stored: [], duplicates: 18 });
    expect(again.rejected.map((r) => r.ref)).toEqual(['ref-7', 'ref-14']);
    const [s] = await chQuery<{ n: string; ids: string }>(iso.config, 'SELECT count() AS n, uniqExact(id) AS ids FROM user_login');
    expect(s).toEqual({ n: '18', ids: '18' });
  });
});
