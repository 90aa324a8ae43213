// `migrate` on the PostgreSQL side: idempotent, safe when two run at once, and adopting a live
// seed-shaped table keeps its rows and their flags.
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { migratePostgres } from '../../src/pg-migrate.js';
import { isolate } from '../support/isolation.js';
import { SEED_DDL, SEED_ROWS, withPg } from '../support/pg.js';

const log = createLogger({ level: 'warn' });
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('PostgreSQL migrations', () => {
  it('migrate twice: the second run applies nothing', async () => {
    const iso = await isolate();
    cleanups.push(iso.cleanup);
    const first = await migratePostgres(iso.config, log);
    expect(first).toEqual(['user_login', 'pending_index', 'failed_rows', 'notify_triggers', 'notify_once_per_bucket']);
    expect(await migratePostgres(iso.config, log)).toEqual([]);
    const ids = await withPg(iso.config, async (c) => (await c.query('SELECT id FROM streamer_migrations ORDER BY id')).rows.map((r) => r.id));
    expect(ids).toEqual([1, 2, 3, 4, 5]);
  });

  it('two migrators at once: one applies, the other finds everything done', async () => {
    const iso = await isolate();
    cleanups.push(iso.cleanup);
    const [a, b] = await Promise.all([migratePostgres(iso.config, log), migratePostgres(iso.config, log)]);
    expect([a.length, b.length].sort()).toEqual([0, 5]);
  });

  it('adopts an existing seed-shaped table with rows: keeps them and their flags', async () => {
    const iso = await isolate();
    cleanups.push(iso.cleanup);
    await withPg(iso.config, async (c) => {
      await c.query(SEED_DDL);
      for (const [i, [u, e, t]] of SEED_ROWS.entries()) {
        // the first eight were sent by an earlier tool; the two "fresher" rows were not
        await c.query('INSERT INTO user_login (username, event_type, event_time, sent_to_kafka) VALUES ($1, $2, $3, $4)', [u, e, t, i < 8]);
      }
    });
    const before = await withPg(iso.config, async (c) => (await c.query('SELECT * FROM user_login ORDER BY id')).rows);
    expect(await migratePostgres(iso.config, log)).toHaveLength(5);
    const after = await withPg(iso.config, async (c) => (await c.query('SELECT * FROM user_login ORDER BY id')).rows);
    expect(after).toEqual(before);
    expect(after.filter((r) => !r.sent_to_kafka).map((r) => r.id)).toEqual([9, 10]);
    // the partial index and both triggers are in place
    const objects = await withPg(iso.config, async (c) => ({
      index: (await c.query(`SELECT indexdef FROM pg_indexes WHERE indexname = 'user_login_pending_idx'`)).rows[0]?.indexdef,
      triggers: (await c.query(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'user_login'::regclass AND NOT tgisinternal ORDER BY tgname`)).rows.map((r) => r.tgname),
    }));
    expect(objects.index).toMatch(/WHERE \(sent_to_kafka IS NOT TRUE\)/);
    expect(objects.triggers).toEqual(['streamer_user_login_inserted', 'streamer_user_login_reset']);
  });

  it('the claim reads only the pending rows through the partial index', async () => {
    const iso = await isolate();
    cleanups.push(iso.cleanup);
    await migratePostgres(iso.config, log);
    const plan = await withPg(iso.config, async (c) => {
      await c.query(`INSERT INTO user_login (username, sent_to_kafka) SELECT 'u' || g, g > 49990 FROM generate_series(1, 50000) g`);
      await c.query('UPDATE user_login SET sent_to_kafka = (id <= 49990)');
      await c.query('ANALYZE user_login');
      const { CLAIM_BATCH } = await import('../../src/sql.js');
      return (await c.query(`EXPLAIN ${CLAIM_BATCH.replace('$1', '1000')}`)).rows.map((r) => r['QUERY PLAN']).join('\n');
    });
    expect(plan).toContain('user_login_pending_idx');
  });
});
