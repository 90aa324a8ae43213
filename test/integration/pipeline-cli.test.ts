// The whole pipeline through the real binary, as a user runs it: migrate, run, insert, then
// check ClickHouse, verify, status and the HTTP endpoints.
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli } from '../support/cli.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { insertSeedRows, SEED_DDL, SEED_ROWS, withPg } from '../support/pg.js';
import { waitFor } from '../support/wait.js';
import { freePort } from '../support/ports.js';

let iso: Isolated;
let ch: ClickHouseClient;
let run: ReturnType<typeof startCli> | undefined;
let port: number;
let env: Record<string, string>;

const chRows = async (sql: string) => (await (await ch.query({ query: sql, format: 'JSONEachRow' })).json()) as Array<Record<string, unknown>>;
const chCount = async () => Number((await chRows('SELECT count() AS n FROM user_login'))[0]!.n);

beforeAll(async () => {
  iso = await isolate();
  port = await freePort();
  env = { ...iso.env, HTTP_PORT: String(port), LOG_LEVEL: 'info' };
  ch = createClient({ url: iso.config.clickhouseUrl, database: iso.config.clickhouseDatabase });
  // A user adopting streamer on the seed's table, with its ten rows not yet sent.
  await withPg(iso.config, (c) => c.query(SEED_DDL));
  await insertSeedRows(iso.config);
});
afterAll(async () => {
  if (run && run.child.exitCode === null) {
    run.child.kill('SIGKILL');
    await run.exited;
  }
  await ch?.close();
  await iso?.cleanup();
});

describe('streamer migrate + run + verify + status (CLI)', () => {
  it('migrate creates both schemas; a second migrate is a no-op', async () => {
    const first = await runCli(['migrate'], env);
    expect(first.code).toBe(0);
    const db = iso.config.clickhouseDatabase;
    expect(first.stdout).toBe(
      'PostgreSQL: applied user_login, pending_index, failed_rows, notify_triggers, notify_once_per_bucket, versions_notify_failed_rows\n' +
        'ClickHouse: applied user_login, dead_letters\n' +
        `public.user_login: capture installed; ClickHouse ${db}.user_login created\n`,
    );
    const second = await runCli(['migrate'], env);
    expect(second.code).toBe(0);
    expect(second.stdout).toBe(`PostgreSQL: up to date\nClickHouse: up to date\npublic.user_login: capture up to date; ClickHouse ${db}.user_login up to date\n`);
  });

  it('run: the seed rows arrive with exactly their values, then an application insert arrives', async () => {
    run = startCli(['run'], env);
    await waitFor('10 rows in ClickHouse', async () => ((await chCount()) === 10 ? true : undefined));
    const rows = await chRows(
      'SELECT toString(id) AS sid, username, event_type, toString(event_time) AS t FROM user_login ORDER BY id',
    );
    expect(rows).toEqual(SEED_ROWS.map(([u, e, t], i) => ({ sid: String(i + 1), username: u, event_type: e, t })));
    await withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username, event_type, event_time) VALUES ('new_user', 'register', '2026-11-25 12:00:00')`));
    await waitFor('11 rows in ClickHouse', async () => ((await chCount()) === 11 ? true : undefined));
    expect(await chRows(`SELECT username, event_type FROM user_login WHERE id = 11`)).toEqual([{ username: 'new_user', event_type: 'register' }]);
  });

  it('serves /healthz, /readyz and /metrics with the counts of this run', async () => {
    const base = `http://127.0.0.1:${port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, notReady: [] });
    // Counters move right after the acknowledgements the rows' arrival depends on (the producer's
    // COMMIT can land a moment after the row is visible in ClickHouse): poll until they settle.
    const expected = [
      /^streamer_rows_published_total\{table="public\.user_login"\} 11$/m,
      /^streamer_rows_inserted_total\{table="public\.user_login"\} 11$/m,
      /^streamer_pending_rows\{table="public\.user_login"\} 0$/m,
      /^streamer_claim_to_clickhouse_seconds_count 11$/m,
      /^streamer_consumer_lag\{topic="[^"]+",partition="\d+"\} \d+$/m,
      /^streamer_consumer_batch_rows_count \d+$/m,
      /^streamer_producer_batch_rows_count \d+$/m,
      /^streamer_dead_letters_total\{table="public\.user_login"\} 0$/m,
      /^streamer_failed_rows 0$/m,
      /^streamer_ready\{component="consumer"\} 1$/m,
      /^streamer_ready\{component="producer"\} 1$/m,
      /^streamer_info\{command="run",version="\d+\.\d+\.\d+"\} 1$/m,
    ];
    const metrics = await waitFor('the metrics of 11 rows', async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return expected.every((re) => re.test(text)) ? text : undefined;
    }, 30_000, 200);
    for (const re of expected) expect(metrics).toMatch(re);
  });

  it('verify passes on a clean run; status --json has the documented shape', async () => {
    const v = await runCli(['verify', '--json'], env);
    expect(v.code).toBe(0);
    const report = JSON.parse(v.stdout);
    expect(report).toMatchObject({ postgresRows: 11, clickhouseRows: 11, missing: 0, duplicated: 0, ok: true });
    const human = await runCli(['verify'], env);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^OK: /);

    const s = await waitFor('lag 0', async () => {
      const r = JSON.parse((await runCli(['status', '--json'], env)).stdout);
      return r.kafka.totalLag === 0 ? r : undefined;
    });
    expect(s).toMatchObject({
      postgres: { pending: 0, failed: 0, total: 11 },
      kafka: { topic: iso.config.kafkaTopic, group: iso.config.kafkaGroupId, totalLag: 0 },
      clickhouse: { database: iso.config.clickhouseDatabase, rows: 11 },
    });
    expect(s.kafka.partitions.length).toBeGreaterThan(0);
  });

  it('verify fails (exit 1) and names the id when ClickHouse holds a row twice', async () => {
    await ch.command({ query: `SYSTEM STOP MERGES ${iso.config.clickhouseDatabase}.user_login` });
    await ch.command({
      query: `INSERT INTO user_login SELECT * FROM user_login WHERE id = 4`,
    });
    const v = await runCli(['verify'], env);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(/^FAILED/);
    expect(v.stdout).toMatch(/^    duplicated versions   1 — e\.g\. 4 \(version \d+\)/m);
    await ch.command({ query: `SYSTEM START MERGES ${iso.config.clickhouseDatabase}.user_login` });
  });

  it('SIGTERM stops run cleanly with exit 0, and no password reached the output', async () => {
    run!.child.kill('SIGTERM');
    expect(await run!.exited).toBe(0);
    const out = run!.output();
    expect(out).toContain('producer stopped');
    expect(out).not.toContain(':postgres@');
  });
});
