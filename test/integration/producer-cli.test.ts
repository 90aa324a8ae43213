// The producer through the real binary: --sweep, time zones, SIGTERM, unreachable services.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { migratePostgres } from '../../src/capture/pg-migrate.js';
import { runCli, startCli } from '../support/cli.js';
import { readTopic } from '../support/kafka.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { pgCount, withPg } from '../support/pg.js';
import { waitFor } from '../support/wait.js';

let iso: Isolated;
beforeAll(async () => {
  iso = await isolate();
  await migratePostgres(iso.config, createLogger({ level: 'warn' }));
});
afterAll(async () => {
  await iso?.cleanup();
});

describe('streamer producer (CLI)', () => {
  it('--sweep drains a backlog, prints the count and exits 0', async () => {
    await withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username) SELECT 'u' || g FROM generate_series(1, 5000) g`));
    const r = await runCli(['producer', '--sweep'], { ...iso.env, PRODUCER_BATCH_SIZE: '1000' });
    expect(r.stderr).not.toMatch(/"level":50/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^published 5000 rows in \d+\.\d\d s \(\d+ rows\/s\)$/m);
    expect(await pgCount(iso.config, 'sent_to_kafka IS NOT TRUE')).toBe(0);
    // a second sweep finds nothing
    const again = await runCli(['producer', '--sweep'], iso.env);
    expect(again.stdout).toMatch(/^published 0 rows/m);
  });

  it('produces identical messages under TZ=America/New_York and TZ=Asia/Kolkata, microseconds intact', async () => {
    const times = ['2024-03-10 02:30:00.123456', '2024-11-03 01:30:00.654321', '1999-12-31 23:59:59.999999', '2023-10-26 10:00:00'];
    const ids = await withPg(iso.config, async (c) => {
      const out: number[] = [];
      for (const t of times) out.push((await c.query('INSERT INTO user_login (username, event_time) VALUES ($1, $2) RETURNING id', ['tz', t])).rows[0].id);
      return out;
    });
    const before = (await readTopic(iso.config, 5000)).length;
    const ny = await runCli(['producer', '--sweep'], { ...iso.env, TZ: 'America/New_York' });
    expect(ny.code).toBe(0);
    await withPg(iso.config, (c) => c.query('UPDATE user_login SET sent_to_kafka = FALSE WHERE id = ANY($1)', [ids]));
    const kolkata = await runCli(['producer', '--sweep'], { ...iso.env, TZ: 'Asia/Kolkata' });
    expect(kolkata.code).toBe(0);
    const all = await readTopic(iso.config, before + 8);
    const tzMessages = all.filter((m) => ids.map(String).includes(m.key!));
    expect(tzMessages).toHaveLength(8);
    const byKey = new Map<string, string[]>();
    for (const m of tzMessages) byKey.set(m.key!, [...(byKey.get(m.key!) ?? []), m.value!.toString()]);
    for (const [i, id] of ids.entries()) {
      // The same content; the re-send is a newer version of the row.
      const [a, b] = byKey.get(String(id))!.map((v) => JSON.parse(v) as Record<string, unknown>);
      expect(Number(b!._version)).toBeGreaterThan(Number(a!._version));
      expect({ ...a, _version: 0 }).toEqual({ ...b, _version: 0 });
      expect(a!.event_time).toBe(times[i]!.includes('.') ? times[i] : `${times[i]}.000000`);
    }
  });

  it('SIGTERM: a running producer closes cleanly and exits 0', async () => {
    const p = startCli(['producer'], { ...iso.env, LOG_LEVEL: 'info' });
    await waitFor('producer started', () => (p.output().includes('producer started') ? true : undefined));
    await withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username) VALUES ('sigterm')`));
    await waitFor('row sent', async () => ((await pgCount(iso.config, `username = 'sigterm' AND sent_to_kafka`)) === 1 ? true : undefined));
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(p.output()).toContain('producer stopped');
  });

  it('--sweep with Kafka unreachable: one line naming Kafka and its address, non-zero exit', async () => {
    const r = await runCli(['producer', '--sweep'], { ...iso.env, KAFKA_BROKERS: '127.0.0.1:1' });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').filter((l) => !l.startsWith('{'))).toEqual([
      expect.stringMatching(/^streamer: Kafka at 127\.0\.0\.1:1 is not reachable \(.+\) — start it with "npm run stack:up" or set KAFKA_BROKERS$/),
    ]);
  });

  it('--sweep with PostgreSQL unreachable: one line naming it (password masked), non-zero exit', async () => {
    const r = await runCli(['producer', '--sweep'], { ...iso.env, DATABASE_URL: 'postgres://postgres:s3cret-pw@127.0.0.1:1/postgres' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^streamer: PostgreSQL at 127\.0\.0\.1:1\/postgres is not reachable \(.*ECONNREFUSED.*\) — start it with "npm run stack:up" or set DATABASE_URL$/m);
    expect(r.stderr + r.stdout).not.toContain('s3cret-pw');
  });

  it('rejects an unknown flag and a bad setting with one line each', async () => {
    const flag = await runCli(['producer', '--swep'], iso.env);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/^streamer: Unknown option '--swep'.* — run "streamer producer --help"\n$/);
    const bad = await runCli(['producer', '--sweep'], { ...iso.env, PRODUCER_BATCH_SIZE: '-1' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('streamer: PRODUCER_BATCH_SIZE="-1" is not valid: expected a whole number from 1 to 100000 (default 2000)\n');
  });
});
