// Issue 9, finding 9 — errors.ts said the retry loops read `retriable`; none did, so an error that
// retrying cannot cure (the ClickHouse table dropped, a privilege revoked) was retried forever
// with a warning, and the process looked healthy. Now the loops read it, as kafkajs's retrier
// does: an outage is retried with backoff; anything else stops the process with one line naming
// the problem and the fix, exit 1, and nothing unstored is committed. The real CLI and services.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@clickhouse/client';
import { migrateAll, userLoginMessage } from '../support/streamer.js';
import { caughtUp, chCount, createTopic, produce, waitFor } from '../support/clickhouse.js';
import { runCli, startCli } from '../support/cli.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { pgCount, withPg } from '../support/pg.js';

let iso: Isolated;
beforeAll(async () => {
  iso = await isolate({ RETRY_MAX_DELAY_MS: '500' });
  const m = await runCli(['migrate'], iso.env);
  expect(m.code, m.stderr).toBe(0);
  await createTopic(iso.config, iso.config.kafkaTopic, 1);
});
afterAll(async () => {
  await iso?.cleanup();
});

const row = (id: number) => userLoginMessage({ id, username: `u${id}`, event_type: 'login', event_time: '2024-01-01 00:00:00.000000' });

describe('errors retrying cannot cure stop the process (issue 9, finding 9)', () => {
  it('the consumer exits 1 with one line when its ClickHouse table is dropped, and commits nothing it did not store', async () => {
    const c = startCli(['consumer'], iso.env);
    try {
      await produce(iso.config, [row(1)]);
      await waitFor(() => chCount(iso.config), (n) => n === 1, 'row 1');
      await waitFor(() => caughtUp(iso.config, iso.config.kafkaGroupId), Boolean, 'the commit of row 1');
      const ch = createClient({ url: iso.config.clickhouseUrl });
      await ch.command({ query: `DROP TABLE ${iso.config.clickhouseDatabase}.user_login` });
      await ch.close();
      await produce(iso.config, [row(2)]);
      const code = await Promise.race([c.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 30_000))]);
      expect(code).toBe(1);
      expect(c.output()).toMatch(/streamer: ClickHouse table streamer_t_\w+\.user_login does not exist — run "streamer migrate"/);
      expect(await caughtUp(iso.config, iso.config.kafkaGroupId)).toBe(false); // row 2 is still to be read
    } finally {
      c.child.kill('SIGKILL');
    }
  });

  it('the producer exits 1 with one line when it loses the right to read its table', async () => {
    const role = `streamer_t_role_${Math.random().toString(36).slice(2, 8)}`;
    const grants = await runCli(['grants', '--postgres', '--role', role], iso.env);
    expect(grants.code, grants.stderr).toBe(0);
    await withPg(iso.config, async (c) => {
      await c.query(grants.stdout);
      await c.query(`ALTER ROLE ${role} PASSWORD 'pw'`);
    });
    const url = new URL(iso.config.databaseUrl);
    url.username = role;
    url.password = 'pw';
    const p = startCli(['producer'], { ...iso.env, DATABASE_URL: url.toString() });
    try {
      await withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username) VALUES ('before-revoke')`));
      await waitFor(() => pgCount(iso.config, `username = 'before-revoke' AND sent_to_kafka`), (n) => n === 1, 'the producer to send a row');
      await withPg(iso.config, async (c) => {
        await c.query(`REVOKE SELECT ON user_login FROM ${role}`);
        await c.query(`INSERT INTO user_login (username) VALUES ('after-revoke')`);
      });
      const code = await Promise.race([p.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 30_000))]);
      expect(code).toBe(1);
      expect(p.output()).toMatch(/streamer: PostgreSQL at \S+ refused us: permission denied for table user_login \(42501\) — grant the role what "streamer grants --postgres" prints/);
    } finally {
      p.child.kill('SIGKILL');
      await withPg(iso.config, (c) => c.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`)).catch(() => {});
    }
  });
});
