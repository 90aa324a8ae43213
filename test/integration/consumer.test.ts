// The consumer against the real Kafka and ClickHouse: values arrive exactly, nothing twice, bad
// messages in the dead-letter topic, replay adds nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClickHouseMigration } from '../../src/sink/clickhouse-migrate.js';
import { chCodec, type ChCodec } from '../../src/tables/ch-types.js';
import { startConsumer, type RunningConsumer } from '../../src/sink/consumer.js';
import { migrateAll, userLoginMessage, type UserLoginRow } from '../support/streamer.js';
import { caughtUp, chCount, chQuery, produce, readTopic, testLogger, waitFor, whileUnreachable, clickhouseAway } from '../support/clickhouse.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { SEED_ROWS } from '../support/pg.js';

let iso: Isolated;
let consumer: RunningConsumer | null = null;
let firstMigration: ClickHouseMigration;
let timeType: ChCodec;

beforeAll(async () => {
  iso = await isolate();
  const logger = testLogger(iso.config);
  firstMigration = await whileUnreachable(() => migrateAll(iso.config, logger));
  const [col] = await chQuery<{ type: string }>(
    iso.config,
    "SELECT type FROM system.columns WHERE database = currentDatabase() AND table = 'user_login' AND name = 'event_time'",
  );
  timeType = chCodec(col?.type ?? '') as ChCodec;
  // No topic yet, as on a fresh deployment: the consumer creates it (regression: it used to fail
  // with "This server does not host this topic-partition").
  consumer = await whileUnreachable(() => startConsumer(iso.config, logger));
});

afterAll(async () => {
  await consumer?.stop();
  await iso?.cleanup();
});

/** What ClickHouse returns for an event_time the producer sent (DateTime on 18.16: whole seconds). */
const stored = (t: string | null) => (t === null ? null : timeType.write(t));
const isDateTime64 = () => timeType.type.includes('DateTime64');

interface Row {
  sid: string;
  username: string | null;
  event_type: string | null;
  event_time: string | null;
}

const rowsBetween = (from: number, to: number) =>
  chQuery<Row>(iso.config, `SELECT toString(id) AS sid, username, event_type, event_time FROM user_login WHERE id BETWEEN ${from} AND ${to} ORDER BY id`);

const send = (rows: UserLoginRow[]) => produce(iso.config, rows.map((r) => userLoginMessage(r)));

describe('consumer: Kafka → ClickHouse', () => {
  it('migrate applied the schema once; a second run is a no-op', async () => {
    expect(firstMigration.applied).toEqual(['user_login', 'dead_letters']);
    expect(firstMigration.tables).toEqual([{ table: `${iso.config.clickhouseDatabase}.user_login`, action: 'created', detail: null }]);
    const again = await migrateAll(iso.config, testLogger(iso.config));
    expect([again.applied, again.tables[0]?.action]).toEqual([[], 'up to date']);
    expect(timeType).not.toBeNull();
  });

  it('refuses to start, in one line, when ClickHouse or Kafka does not answer or the table is missing', async () => {
    const logger = testLogger(iso.config);
    await expect(startConsumer({ ...iso.config, clickhouseUrl: 'http://127.0.0.1:1' }, logger)).rejects.toThrow(
      /^ClickHouse at http:\/\/127\.0\.0\.1:1 is not reachable \(connect ECONNREFUSED 127\.0\.0\.1:1\) — start it with "npm run stack:up" or set CLICKHOUSE_URL$/,
    );
    // (whileUnreachable: the outage test of another file may be restarting the local ClickHouse.)
    await expect(whileUnreachable(() => startConsumer({ ...iso.config, kafkaBrokers: ['127.0.0.1:1'] }, logger), 30_000, clickhouseAway)).rejects.toThrow(
      /^Kafka at 127\.0\.0\.1:1 is not reachable \(.*\) — start it with "npm run stack:up" or set KAFKA_BROKERS$/,
    );
    await expect(whileUnreachable(() => startConsumer({ ...iso.config, clickhouseDatabase: 'system' }, logger), 30_000, clickhouseAway)).rejects.toThrow(
      'ClickHouse table system.user_login does not exist — create it with "streamer migrate"',
    );
  });

  it("stores the seed's ten rows with exactly their values", async () => {
    const rows = SEED_ROWS.map(([username, event_type, t], i) => ({ id: i + 1, username, event_type, event_time: `${t}.000000` }));
    await send(rows);
    await waitFor(() => chCount(iso.config, 'id BETWEEN 1 AND 10'), (n) => n >= 10, 'the ten seed rows');
    expect(await rowsBetween(1, 10)).toEqual(
      rows.map((r) => ({ sid: String(r.id), username: r.username, event_type: r.event_type, event_time: stored(r.event_time) })),
    );
    // On 18.16 (DateTime) the digits are the seed's exactly: '2023-10-26 10:00:00'.
    if (!isDateTime64()) expect((await rowsBetween(1, 1))[0]?.event_time).toBe('2023-10-26 10:00:00');
  });

  it('stores a version published twice once (count() without FINAL)', async () => {
    const row = { id: 100, username: 'twice', event_type: 'login', event_time: '2024-01-01 00:00:00.000000' };
    await send([row, row]); // twice in one batch
    await waitFor(() => chCount(iso.config, 'id = 100'), (n) => n >= 1, 'id 100');
    await send([row, { ...row, id: 101 }]); // and again in a later batch
    await waitFor(() => chCount(iso.config, 'id = 101'), (n) => n >= 1, 'id 101');
    expect(await chCount(iso.config, 'id = 100')).toBe(1);
  });

  it('dead-letters malformed messages with their original bytes and a reason, and stores the good ones around them', async () => {
    const good = (id: number) => userLoginMessage({ id, username: `good${id}`, event_type: 'login', event_time: '2024-02-29 23:59:59.123456' });
    const bad: { key: string; value: string; reason: RegExp }[] = [
      { key: 'k-notjson', value: '{"id": 201, oops', reason: /not JSON/ },
      { key: 'k-noid', value: '{"username":"x","event_type":"login","event_time":null,"_op":"upsert","_version":1}', reason: /lacks the key column id/ },
      { key: 'k-textid', value: '{"id":"twelve","username":"x","event_type":"login","event_time":null,"_op":"upsert","_version":1}', reason: /id: Int32 needs an integer/ },
      { key: '203', value: '{"id":203,"username":"x","event_type":"login","event_time":"not a date","_op":"upsert","_version":1}', reason: /event_time: .*needs a timestamp/ },
      { key: 'k-op', value: '{"id":209,"_op":"merge","_version":1}', reason: /_op must be upsert, delete or truncate/ },
    ];
    // Out of range for the column: DateTime (18.16) holds 1970–2105, DateTime64 1900–2299.
    const outOfRange = !isDateTime64() ? ['1901-01-01 00:00:00.000000', '2299-12-31 23:59:59.000000'] : ['1899-12-31 23:59:59.000000', '2300-01-01 00:00:00.000000'];
    outOfRange.forEach((t, i) =>
      bad.push({ key: String(204 + i), value: JSON.stringify({ id: 204 + i, username: 'x', event_type: 'login', event_time: t, _op: 'upsert', _version: 1 }), reason: /outside what ClickHouse/ }),
    );
    await produce(iso.config, [good(200), ...bad.map(({ key, value }) => ({ key, value })), good(210)]);

    const dead = await readTopic(iso.config, iso.config.kafkaDlqTopic, bad.length);
    expect(dead).toHaveLength(bad.length);
    for (const b of bad) {
      const d = dead.find((m) => m.key === b.key);
      expect(d, b.key).toBeDefined();
      expect(d?.value?.toString('utf8')).toBe(b.value); // the original bytes
      expect(d?.headers['x-dlq-reason']).toMatch(b.reason);
      expect(d?.headers['x-original-topic']).toBe(iso.config.kafkaTopic);
      expect(d?.headers['x-original-partition']).toMatch(/^\d+$/);
      expect(d?.headers['x-original-offset']).toMatch(/^\d+$/);
    }
    await waitFor(() => chCount(iso.config, 'id IN (200, 210)'), (n) => n >= 2, 'good rows 200 and 210');
    expect((await rowsBetween(200, 210)).map((r) => r.sid)).toEqual(['200', '210']);
    expect((await rowsBetween(200, 200))[0]?.event_time).toBe(stored('2024-02-29 23:59:59.123456'));
  });

  it('round-trips NULLs, Unicode, quotes, backslashes, newlines and a 1 MB string exactly', async () => {
    const rows: UserLoginRow[] = [
      { id: 300, username: null, event_type: null, event_time: null },
      { id: 301, username: 'zoë 🚀 日本語 𝔘𝔫𝔦𝔠𝔬𝔡𝔢', event_type: 'ёлка', event_time: '2024-01-02 03:04:05.678901' },
      { id: 302, username: `it's "quoted" \\ back\\slash`, event_type: 'tab\there\nnew line\r\n', event_time: '1970-01-01 00:00:01.000000' },
      { id: 303, username: '\u0000\u0001\u001f control \u007f', event_type: '{"json":"inside"}', event_time: '2105-12-31 23:59:59.999999' },
      { id: 304, username: 'x'.repeat(999_000) + '✓', event_type: '', event_time: '2000-02-29 12:00:00.000001' },
    ];
    await send(rows);
    await waitFor(() => chCount(iso.config, 'id BETWEEN 300 AND 304'), (n) => n >= rows.length, 'rows 300–304');
    const back = await rowsBetween(300, 304);
    expect(back).toHaveLength(rows.length);
    rows.forEach((r, i) => {
      // toBe on strings, not toEqual on the objects: a 1 MB diff would drown the report.
      const b = back[i] as Row;
      expect(b.sid).toBe(String(r.id));
      expect(b.username === r.username, `username of ${r.id}`).toBe(true);
      expect(b.event_type).toBe(r.event_type);
      expect(b.event_time).toBe(stored(r.event_time));
    });
  });

  it('stores the epoch itself (18.16 prints DateTime 0 as 0000-00-00 00:00:00, but the value is 0)', async () => {
    await send([{ id: 305, username: 'epoch', event_type: 'login', event_time: '1970-01-01 00:00:00.000000' }]);
    await waitFor(() => chCount(iso.config, 'id = 305'), (n) => n >= 1, 'row 305');
    const [r] = await chQuery<{ s: string | number }>(iso.config, 'SELECT toUnixTimestamp(event_time) AS s FROM user_login WHERE id = 305');
    expect(Number(r?.s)).toBe(0);
  });

  it('stores every id once in all (count() = distinct ids), and a replay of the whole topic under a new group adds nothing', async () => {
    await waitFor(() => caughtUp(iso.config, iso.config.kafkaGroupId), Boolean, 'the consumer to commit everything');
    const [before] = await chQuery<{ n: string; ids: string }>(iso.config, 'SELECT count() AS n, uniqExact(id) AS ids FROM user_login');
    expect(before?.n).toBe(before?.ids);
    expect(Number(before?.n)).toBe(10 + 2 + 2 + 5 + 1);

    await consumer?.stop();
    consumer = null;
    const replayConfig = { ...iso.config, kafkaGroupId: `${iso.config.kafkaGroupId}_replay` };
    const replay = await whileUnreachable(() => startConsumer(replayConfig, testLogger(iso.config)));
    try {
      await waitFor(() => caughtUp(replayConfig, replayConfig.kafkaGroupId), Boolean, 'the replay to commit everything');
    } finally {
      await replay.stop();
    }
    await replay.done;
    const [after] = await chQuery<{ n: string }>(iso.config, 'SELECT count() AS n FROM user_login');
    expect(after?.n).toBe(before?.n);
  });
});
