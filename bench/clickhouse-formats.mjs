// ClickHouse alone: what an insert of 20,000 user_login rows costs it as JSONEachRow and as
// TabSeparated (the sink's format since 2026-11-27), alternated, 10 inserts per round. Prints the
// milliseconds per insert (the client waits for them) and ClickHouse's user CPU per row
// (system.events UserTimeMicroseconds, the whole server's), and the body's bytes per row.
//
//   node bench/clickhouse-formats.mjs [rounds, default 4]     (CLICKHOUSE_URL, default the local stack's)
//
// It works in its own database (bench_formats_<random>), dropped at the end; asserts nothing and
// writes no JSON.
const url = (process.env.CLICKHOUSE_URL ?? 'http://127.0.0.1:8123/').replace(/\/?$/, '/');
const rounds = Number(process.argv[2] ?? 4);
const db = `bench_formats_${Math.random().toString(36).slice(2, 8)}`;

async function q(sql, body) {
  const r = await fetch(`${url}?query=${encodeURIComponent(sql)}`, { method: 'POST', body });
  const text = await r.text();
  if (!r.ok) throw new Error(`ClickHouse at ${url}: ${text.slice(0, 300)}`);
  return text;
}

const COLUMNS = ['id', 'username', 'event_type', 'event_time', '_version', '_deleted', '_kafka_partition', '_kafka_offset', '_ingested_at'];
let version = 0;
function body(format) {
  const lines = [];
  for (let i = 0; i < 20_000; i++) {
    version++;
    const [id, time, p] = [version, `2026-11-26 21:${String(i % 60).padStart(2, '0')}:13`, i % 3];
    const values = [id, `user_${id}`, 'login', time, version, 0, p, version, '2026-11-26 21:00:00'];
    lines.push(format === 'JSONEachRow' ? JSON.stringify(Object.fromEntries(COLUMNS.map((c, j) => [c, values[j]]))) : values.join('\t'));
  }
  return `${lines.join('\n')}\n`;
}
const userMicros = async () => Number((await q("SELECT value FROM system.events WHERE event = 'UserTimeMicroseconds'")).trim() || 0);

await q(`CREATE DATABASE ${db}`);
try {
  await q(
    `CREATE TABLE ${db}.user_login (id Int32, username Nullable(String), event_type Nullable(String), event_time Nullable(DateTime('UTC')), ` +
      `_version UInt64, _deleted UInt8, _kafka_partition UInt32, _kafka_offset UInt64, _ingested_at DateTime('UTC')) ENGINE = ReplacingMergeTree(_version) ORDER BY id`,
  );
  for (let r = 1; r <= rounds; r++) {
    for (const format of ['JSONEachRow', 'TabSeparated']) {
      const bodies = Array.from({ length: 10 }, () => body(format));
      const cpu0 = await userMicros();
      const t0 = performance.now();
      for (const b of bodies) await q(`INSERT INTO ${db}.user_login (${COLUMNS.join(', ')}) FORMAT ${format}`, b);
      const ms = (performance.now() - t0) / bodies.length;
      const cpu = (await userMicros()) - cpu0;
      const bytes = Buffer.byteLength(bodies[0]) / 20_000;
      console.log(`round ${r} ${format.padEnd(12)} ${ms.toFixed(1).padStart(6)} ms per insert, ClickHouse ${(cpu / (bodies.length * 20_000)).toFixed(2)} µs user CPU per row, ${bytes.toFixed(0)} bytes per row`);
    }
  }
} finally {
  await q(`DROP DATABASE IF EXISTS ${db}`);
}
