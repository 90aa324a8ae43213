// The first batch's claims are PREPAREd once per session and planned at their first EXECUTE
// (plans.leadClaim, LEAD_BEGIN): often while the table is empty and never analyzed, which
// PostgreSQL plans as a small table. That plan is kept until an ANALYZE; it must read the pending
// index in key order however small the table looked, or each claim reads the whole table (issue
// 14: a claim went from 0.6 to 1.7 ms as the table grew to 10,000 rows). Real PostgreSQL.
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { LEAD_BEGIN, PRODUCER_BEGIN } from '../../src/capture/plans.js';
import { loadSources } from '../../src/capture/producer.js';
import { captureObjects } from '../../src/tables/spec.js';
import { runCli } from '../support/cli.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { withPg } from '../support/pg.js';

const isolated: Isolated[] = [];
afterAll(async () => {
  for (const i of isolated) await i.cleanup();
});

/** The plans a new session makes for the lead statements at their first EXECUTE, inside `begin`. */
async function firstPlans(iso: Isolated, begin: string): Promise<{ plans: string[]; pendingIndex: string }> {
  return withPg(iso.config, async (c) => {
    const [source] = await loadSources(c as unknown as pg.Pool, iso.config);
    const lead = source!.plans.leadClaim(iso.config.producerBatchSize, source!.name);
    for (const st of lead.statements) await c.query(st.prepare);
    await c.query(begin);
    try {
      const plans: string[] = [];
      for (const st of lead.statements) plans.push((await c.query(`EXPLAIN EXECUTE ${st.name}`)).rows.map((r) => r['QUERY PLAN']).join('\n'));
      return { plans, pendingIndex: captureObjects(source!.spec).pendingIndex };
    } finally {
      await c.query('ROLLBACK');
    }
  });
}

describe("the first batch's prepared claims on a table never analyzed", () => {
  it('flag mode: the claim reads the pending index in key order and marks rows by tuple id; the change-log claim reads its key', async () => {
    const iso = await isolate();
    isolated.push(iso);
    expect((await runCli(['migrate'], iso.env)).code).toBe(0);
    const analyzed = await withPg(iso.config, async (c) => (await c.query(`SELECT reltuples FROM pg_class WHERE oid = 'user_login'::regclass`)).rows[0].reltuples);
    expect(analyzed).toBe(-1); // never analyzed: the case that went wrong

    const { plans, pendingIndex } = await firstPlans(iso, LEAD_BEGIN);
    const [claim, changes, shape] = plans;
    expect(claim).toContain(`Index Scan using ${pendingIndex} on user_login`);
    expect(claim).toContain('Tid Scan on user_login');
    expect(claim).not.toMatch(/Seq Scan|Sort/);
    expect(changes).toContain('Index Scan using streamer_user_login_changes_pkey');
    expect(changes).not.toMatch(/Seq Scan|Sort/);
    expect(shape).toContain('Index Scan using streamer_tables_pkey');

    // Without LEAD_BEGIN's settings the same statements got a sequential scan and a sort: what
    // this test guards against (if a PostgreSQL release plans it well, this line says so).
    const [plain] = (await firstPlans(iso, PRODUCER_BEGIN)).plans;
    expect(plain).toMatch(/Seq Scan on user_login/);
  });
});
