// `migrate` on the PostgreSQL side: idempotent, safe when two run at once, adopting a live
// seed-shaped table keeps its rows and their flags, and a database migrated by f141f4e is brought
// up to date (its triggers replaced, its failed rows kept).
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { migratePostgres } from '../../src/capture/pg-migrate.js';
import { loadSources } from '../../src/capture/producer.js';
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
    expect(first.applied).toEqual(['user_login', 'pending_index', 'failed_rows', 'notify_triggers', 'notify_once_per_bucket', 'versions_notify_failed_rows']);
    expect(first.tables).toEqual([{ table: 'public.user_login', capture: 'installed', backfilled: 0, addedColumns: [] }]);
    const second = await migratePostgres(iso.config, log);
    expect(second.applied).toEqual([]);
    expect(second.tables).toEqual([{ table: 'public.user_login', capture: 'up to date', backfilled: 0, addedColumns: [] }]);
    const ids = await withPg(iso.config, async (c) => (await c.query('SELECT id FROM streamer_migrations ORDER BY id')).rows.map((r) => r.id));
    expect(ids).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('two migrators at once: one applies, the other finds everything done', async () => {
    const iso = await isolate();
    cleanups.push(iso.cleanup);
    const [a, b] = await Promise.all([migratePostgres(iso.config, log), migratePostgres(iso.config, log)]);
    expect([a.applied.length, b.applied.length].sort()).toEqual([0, 6]);
    expect([a.tables[0]?.capture, b.tables[0]?.capture].sort()).toEqual(['installed', 'up to date']);
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
    expect((await migratePostgres(iso.config, log)).applied).toHaveLength(6);
    const after = await withPg(iso.config, async (c) => (await c.query('SELECT * FROM user_login ORDER BY id')).rows);
    expect(after).toEqual(before);
    expect(after.filter((r) => !r.sent_to_kafka).map((r) => r.id)).toEqual([9, 10]);
    // the partial index and both triggers are in place
    const objects = await withPg(iso.config, async (c) => ({
      index: (await c.query(`SELECT indexdef FROM pg_indexes WHERE indexname = 'user_login_pending_idx'`)).rows[0]?.indexdef,
      triggers: (await c.query(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'user_login'::regclass AND NOT tgisinternal ORDER BY tgname`)).rows.map((r) => r.tgname),
    }));
    expect(objects.index).toMatch(/WHERE \(sent_to_kafka IS NOT TRUE\)/);
    expect(objects.triggers).toEqual(['streamer_user_login_changed', 'streamer_user_login_deleted', 'streamer_user_login_inserted', 'streamer_user_login_truncated', 'streamer_user_login_updated']);
  });

  it('the claim reads only the pending rows through the partial index', async () => {
    const iso = await isolate();
    cleanups.push(iso.cleanup);
    await migratePostgres(iso.config, log);
    const plan = await withPg(iso.config, async (c) => {
      await c.query(`INSERT INTO user_login (username, sent_to_kafka) SELECT 'u' || g, g > 49990 FROM generate_series(1, 50000) g`);
      await c.query('UPDATE user_login SET sent_to_kafka = (id <= 49990)');
      await c.query('ANALYZE user_login');
      const [source] = await loadSources(c, iso.config);
      return (await c.query(`EXPLAIN ${source!.plans.claimRows!.replace('$1', '1000').replace(/\$2/g, "'public.user_login'")}`)).rows.map((r) => r['QUERY PLAN']).join('\n');
    });
    expect(plan).toContain('user_login_pending_idx');
  });

  it('brings a database migrated by f141f4e up to date: new triggers, the old functions gone, failed rows kept', async () => {
    const iso = await isolate();
    cleanups.push(iso.cleanup);
    // f141f4e's migrations 0001–0005, as that version applied them (sql of commit f141f4e).
    await withPg(iso.config, async (c) => {
      await c.query(`CREATE TABLE streamer_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
      await c.query(SEED_DDL);
      await c.query(`CREATE INDEX user_login_pending_idx ON user_login (id) WHERE sent_to_kafka IS NOT TRUE`);
      await c.query(`CREATE TABLE streamer_failed_rows (id BIGINT PRIMARY KEY, error TEXT NOT NULL, failed_at TIMESTAMPTZ NOT NULL DEFAULT now(), attempts INTEGER NOT NULL DEFAULT 1)`);
      await c.query(`CREATE FUNCTION streamer_notify_user_login() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('streamer_user_login', TG_OP); RETURN NULL; END; $$`);
      await c.query(`CREATE TRIGGER streamer_user_login_reset AFTER UPDATE OF sent_to_kafka ON user_login FOR EACH ROW WHEN (OLD.sent_to_kafka IS TRUE AND NEW.sent_to_kafka IS NOT TRUE) EXECUTE FUNCTION streamer_notify_user_login()`);
      await c.query(`CREATE FUNCTION streamer_notify_user_login_inserted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('streamer_user_login', TG_OP); RETURN NULL; END; $$`);
      await c.query(`CREATE TRIGGER streamer_user_login_inserted AFTER INSERT ON user_login FOR EACH STATEMENT EXECUTE FUNCTION streamer_notify_user_login_inserted()`);
      await c.query(`INSERT INTO streamer_migrations (id, name) VALUES (1, 'user_login'), (2, 'pending_index'), (3, 'failed_rows'), (4, 'notify_triggers'), (5, 'notify_once_per_bucket')`);
      await c.query(`INSERT INTO user_login (username, sent_to_kafka) VALUES ('sent', TRUE), ('pending', FALSE), ('too big', FALSE)`);
      await c.query(`INSERT INTO streamer_failed_rows (id, error) VALUES (3, 'MESSAGE_TOO_LARGE')`);
    });
    const r = await migratePostgres(iso.config, log);
    expect(r.applied).toEqual(['versions_notify_failed_rows']);
    const state = await withPg(iso.config, async (c) => ({
      failed: (await c.query('SELECT table_name, key, error FROM streamer_failed_rows')).rows,
      functions: (await c.query(`SELECT proname FROM pg_proc WHERE proname LIKE 'streamer_notify_user_login%' ORDER BY 1`)).rows.map((x) => x.proname),
      flags: (await c.query('SELECT id, sent_to_kafka FROM user_login ORDER BY id')).rows,
    }));
    expect(state.failed).toEqual([{ table_name: 'public.user_login', key: '3', error: 'MESSAGE_TOO_LARGE' }]);
    expect(state.functions).toEqual([]);
    expect(state.flags).toEqual([{ id: 1, sent_to_kafka: true }, { id: 2, sent_to_kafka: false }, { id: 3, sent_to_kafka: false }]);
  });
});
