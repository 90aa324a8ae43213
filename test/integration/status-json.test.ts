// Issue 15 — `streamer status --json` prints one JSON object on stdout in every case, so that
// scripts can parse it: the problem in the failing section's `error`, `ok` false, exit 1. The
// human form keeps its one clear line. The real CLI against the real services.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatusReport } from '../../src/ops/status.js';
import { runCli } from '../support/cli.js';
import { isolate, type Isolated } from '../support/isolation.js';

let iso: Isolated;
beforeAll(async () => {
  iso = await isolate(); // a new database: nothing migrated yet
});
afterAll(async () => {
  await iso?.cleanup();
});

const json = (stdout: string) => JSON.parse(stdout) as StatusReport;

describe('status --json always answers in JSON (issue 15)', () => {
  it('before migrate: the PostgreSQL section says what to run, the others still show, exit 1', async () => {
    const r = await runCli(['status', '--json'], iso.env);
    expect(r.code).toBe(1);
    const s = json(r.stdout);
    expect(s.ok).toBe(false);
    expect(s.postgres).toEqual({
      pending: null,
      failed: null,
      total: null,
      error: expect.stringMatching(/^PostgreSQL at 127\.0\.0\.1:5432\/streamer_t_\w+ has no table public\.user_login — run "streamer migrate" \(it creates the seed's table\)$/),
    });
    expect(s.kafka).toMatchObject({ topic: iso.config.kafkaTopic, topicExists: false, totalLag: 0, error: null });
    expect(s.clickhouse).toMatchObject({ tableExists: false, note: expect.stringMatching(/run "streamer migrate"/), error: null });
  });

  it('the human form keeps its one line', async () => {
    const r = await runCli(['status'], iso.env);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^streamer: PostgreSQL at \S+ has no table public\.user_login — run "streamer migrate" \(it creates the seed's table\)\n$/);
  });

  it('with Kafka and ClickHouse unreachable: their sections carry the address and the fix', async () => {
    const r = await runCli(['status', '--json'], { ...iso.env, KAFKA_BROKERS: '127.0.0.1:1', CLICKHOUSE_URL: 'http://127.0.0.1:1' });
    expect(r.code).toBe(1);
    const s = json(r.stdout);
    expect(s.kafka.error).toMatch(/^Kafka at 127\.0\.0\.1:1 is not reachable \(.*\) — start it with "npm run stack:up" or set KAFKA_BROKERS$/);
    expect(s.clickhouse.error).toMatch(/^ClickHouse at http:\/\/127\.0\.0\.1:1 is not reachable \(.*ECONNREFUSED.*\) — start it with "npm run stack:up" or set CLICKHOUSE_URL$/);
    expect(s.clickhouse.rows).toBeNull();
  });

  it('a bad setting: {"ok":false,"error":…} on stdout, the one line on stderr, exit 1, secret masked', async () => {
    const r = await runCli(['status', '--json'], { ...iso.env, CLICKHOUSE_URL: 'ftp://u:hunter22@h/' });
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ ok: false, error: 'CLICKHOUSE_URL="ftp://u:***@h/" has protocol ftp: — expected http: or https:' });
    expect(r.stderr).toMatch(/^streamer: CLICKHOUSE_URL=/);
    expect(r.stdout + r.stderr).not.toContain('hunter22');
  });

  it('after migrate: ok, every error null, exit 0', async () => {
    expect((await runCli(['migrate'], iso.env)).code).toBe(0);
    const r = await runCli(['status', '--json'], iso.env);
    expect(r.code).toBe(0);
    const s = json(r.stdout);
    expect([s.ok, s.postgres.error, s.kafka.error, s.clickhouse.error, s.postgres.total, s.clickhouse.rows]).toEqual([true, null, null, null, 0, 0]);
  });
});
