// The PostgreSQL SQL generated per table (the capture and the producer's queries) and the grants:
// names always quoted, no column named where a user's ALTER TABLE would trip over it. Their
// behaviour is tested against the real PostgreSQL (test/integration/changes.test.ts and others).
import { describe, expect, it } from 'vitest';
import { installCapture, keyTextSql, LEAD_BEGIN, PRODUCER_BEGIN, producerPlans, wholeRowAliases } from '../../src/capture/plans.js';
import { clickhouseGrants, formatGrants, postgresGrants } from '../../src/ops/grants.js';
import { spec } from './support/specs.js';

const orders = spec('Sales', 'Order Items', [
  ['Order', 'int8', { notNull: true }],
  ['line', 'int2', { notNull: true }],
  ['note', 'text'],
  ['secret', 'text'],
], { key: ['Order', 'line'], exclude: ['secret'] });
const userLogin = spec('public', 'user_login', [
  ['id', 'int4', { notNull: true }],
  ['username', 'text'],
  ['sent_to_kafka', 'bool'],
], { flagColumn: 'sent_to_kafka' });

describe('capture install', () => {
  it('quotes every identifier of a mixed-case table and keeps its objects apart', () => {
    const sql = installCapture(orders, 'public').join(';\n');
    expect(sql).toContain('CREATE TABLE IF NOT EXISTS "Sales"."streamer_sales_order_items_');
    expect(sql).toContain('"Order" text');
    expect(sql).toContain('ON "Sales"."Order Items"');
    expect(sql).not.toMatch(/ON Sales\.|"Order Items"\."Order"/);
    // Excluded columns do not make an update a change.
    expect(sql).toContain(`pg_catalog.to_jsonb("streamer_n") OPERATOR(pg_catalog.-) ARRAY['secret']::pg_catalog.text[]`);
    // Whole rows compare by their binary image, under aliases no column is called.
    expect(sql).toContain('"streamer_n" OPERATOR(pg_catalog.*<>) "streamer_o"');
  });

  it('picks whole-row aliases that no column of the table is called', () => {
    const awkward = spec('public', 'awkward', [['id', 'int8', { notNull: true }], ['streamer_n', 'int8'], ['streamer_o2', 'int8']]);
    expect(wholeRowAliases(awkward)).toEqual({ n: '"streamer_n3"', o: '"streamer_o3"' });
    expect(installCapture(awkward, 'public').join(';\n')).toContain('FROM streamer_new "streamer_n3" FULL JOIN streamer_old "streamer_o3"');
  });

  it("flag mode names no replicated column in a trigger's UPDATE OF list or WHEN clause (ALTER COLUMN TYPE must keep working)", () => {
    const triggers = installCapture(userLogin, 'public').filter((s) => s.startsWith('CREATE TRIGGER'));
    for (const t of triggers) {
      expect(t).not.toMatch(/UPDATE OF "(id|username)"/);
      const when = /WHEN \((.*)\) EXECUTE/s.exec(t)?.[1] ?? '';
      expect(when.replace(/"sent_to_kafka"/g, '')).not.toMatch(/"/);
    }
    expect(triggers.some((t) => /BEFORE UPDATE ON "public"\."user_login"\s+FOR EACH ROW WHEN \(NOT \(OLD\."sent_to_kafka" IS NOT TRUE AND NEW\."sent_to_kafka" IS TRUE\)\)/.test(t))).toBe(true);
  });

  it('functions that write the change log run as their owner with a fixed search_path; the per-statement wake-up and the per-row check as the caller, without a SET clause', () => {
    for (const spec of [orders, userLogin]) {
      for (const f of installCapture(spec, 'streamer').filter((s) => s.startsWith('CREATE OR REPLACE FUNCTION'))) {
        const name = /_(notify|changed|updated|key_changed|truncated|deleted|logged)"\(/.exec(f)?.[1];
        if (f.includes('_changes')) expect(f, name).toContain('SECURITY DEFINER SET search_path = pg_catalog, pg_temp');
        else {
          expect(['notify', 'changed', 'updated']).toContain(name);
          expect(f, name).not.toMatch(/SECURITY DEFINER|SET search_path/);
          // Every function and operator named through pg_catalog (or our own qualified function).
          expect(f.replace(/pg_catalog\.\w+|OPERATOR\(pg_catalog\.[^)]+\)|"public"\."streamer_\w+"/g, ''), name).not.toMatch(/\w\(/);
        }
      }
    }
    expect(installCapture(orders, 'streamer').join('\n')).toContain(`nextval('"streamer".streamer_version_seq')`);
  });
});

describe('producer plans', () => {
  it('key text: the value for one column, a JSON array for several', () => {
    expect(keyTextSql(userLogin, 't')).toBe('t."id"::text');
    expect(keyTextSql(orders, 'c')).toBe('json_build_array(c."Order"::text, c."line"::text)::text');
  });

  it('claims flagged rows under lock, marking them sent; their versions are taken after; log mode has no row claim', () => {
    const p = producerPlans(userLogin);
    expect(p.claimRows).toMatch(
      /WITH c AS MATERIALIZED \([\s\S]*FOR UPDATE OF t SKIP LOCKED\)\s*UPDATE "public"\."user_login" t SET "sent_to_kafka" = TRUE\s+WHERE t\.ctid = ANY \(ARRAY\(SELECT c\.tid FROM c\)\)\s+RETURNING [^;]*t\."id"::text AS key$/,
    );
    // The batches after a drain's first: the same claim as COPY, values as literals, and which row
    // has the highest key (is_last); after the highest key a batch before claimed, its text as a
    // literal of the key's type.
    const literal = (sql: string) => sql.replace('LIMIT $1', 'LIMIT 5000').replaceAll('$2', "'public.user_login'").replace('SELECT t.ctid AS tid\n', 'SELECT t.ctid AS tid, t."id" AS k0\n');
    const isLast = ',\n          t."id" = (SELECT c.k0 FROM c ORDER BY c.k0 DESC LIMIT 1) AS is_last';
    expect(p.copyClaim!(5000, 'public.user_login')).toBe(`COPY (${literal(p.claimRows as string)}${isLast}) TO STDOUT`);
    expect(p.copyClaim!(5000, 'public.user_login', ['42'])).toBe(`COPY (${literal(p.claimRows as string).replace('IS NOT TRUE AND ', `IS NOT TRUE AND t."id" > '42'::int4 AND `)}${isLast}) TO STDOUT`);
    expect(() => p.copyClaim!(-5, 'public.user_login')).toThrow(/whole number/);
    // The versions come after, in their own statement, in the same transaction.
    expect(p.claimRows).not.toContain('nextval');
    expect(p.unmarkRows).toBe(`UPDATE "public"."user_login" t SET "sent_to_kafka" = FALSE WHERE (t."id") IN (SELECT u.k0::int4 FROM unnest($1::text[]) AS u(k0))`);
    // Several key columns in flag mode: each one's text too, to make a refused row pending again.
    const flagged = producerPlans({ ...orders, capture: { kind: 'flag', column: 'note' } });
    expect(flagged.claimRows).toMatch(/AS key, t\."Order"::text AS k0, t\."line"::text AS k1$/);
    expect(flagged.copyClaim!(7, 'x')).toMatch(/AS key, t\."Order"::text AS k0, t\."line"::text AS k1,\s+\(t\."Order", t\."line"\) = \(SELECT c\.k0, c\.k1 FROM c ORDER BY c\.k0 DESC, c\.k1 DESC LIMIT 1\) AS is_last\) TO STDOUT$/);
    expect(flagged.copyClaim!(7, 'x')).toContain('SELECT t.ctid AS tid, t."Order" AS k0, t."line" AS k1\n');
    expect(flagged.claimRows).toContain('SELECT t.ctid AS tid\n');
    expect(flagged.copyClaim!(7, "Sales.O'Items", ["1'2", '3'])).toContain(`IS NOT TRUE AND (t."Order", t."line") > ('1''2'::int8, '3'::int2) AND NOT EXISTS (SELECT 1 FROM streamer_failed_rows f WHERE f.table_name = 'Sales.O''Items'`);
    const q = producerPlans(orders);
    expect([q.claimRows, q.copyClaim, q.unmarkRows]).toEqual([null, null, null]);
    // After the row claim, one round trip: the versions, the change-log claim, the recorded shape.
    const after = p.afterClaim(3, 2000, "public.user_login").split(';\n');
    expect(after).toHaveLength(3);
    expect(after[0]).toBe("SELECT string_agg(s.v::text, ',' ORDER BY s.v) AS v FROM (SELECT nextval('streamer_version_seq') AS v FROM generate_series(1, 3)) s");
    expect(after[1]).toBe(p.claimChanges.replace('LIMIT $1', 'LIMIT 2000').replace('$2', "'public.user_login'"));
    expect(after[2]).toBe("SELECT capture, columns FROM streamer_tables WHERE table_name = 'public.user_login'");
    expect(q.afterClaim(0, 5, "Sales.O'Items").split(';\n')[2]).toContain("table_name = 'Sales.O''Items'");
    expect(() => p.afterClaim(1.5, 2000, 'public.user_login')).toThrow(/whole number/);
    // …and the change-log claim after the highest version the batch before claimed.
    expect(p.afterClaim(3, 2000, 'public.user_login', '9007199254740993').split(';\n')[1]).toBe(
      after[1]?.replace('WHERE (', 'WHERE c._version > 9007199254740993 AND ('),
    );
    expect(() => p.afterClaim(3, 2000, 'public.user_login', '1; DROP TABLE x')).toThrow(/version/);
    // The first batch of a pass: BEGIN, the claim with its versions, the change-log claim and the
    // shape in one round trip, each statement prepared once per session; the claim is claimRows
    // with literals and a version per row.
    const lead = p.leadClaim(2000, 'public.user_login');
    const sql = lead.statements.map((st) => st.prepare.replace(/^PREPARE streamer_[0-9a-f]{24} AS /, ''));
    expect(sql).toHaveLength(3); // claim; change-log claim; shape
    expect(sql[0]).toBe(`${(p.claimRows as string).replace('LIMIT $1', 'LIMIT 2000').replaceAll('$2', "'public.user_login'")}, nextval('streamer_version_seq')::text AS v`);
    expect(sql.slice(1)).toEqual(after.slice(1));
    expect(lead.text).toBe([LEAD_BEGIN, ...lead.statements.map((st) => `EXECUTE ${st.name}`)].join(';\n'));
    expect(LEAD_BEGIN.startsWith(`${PRODUCER_BEGIN}; `)).toBe(true);
    expect(lead.before).toBe(5); // BEGIN, SET LOCAL × 4
    expect(PRODUCER_BEGIN).toContain('SET LOCAL jit = off'); // a batch's statements are never JIT-compiled
    expect(lead.statements.map((st) => st.prepare.startsWith(`PREPARE ${st.name} AS `))).toEqual([true, true, true]);
    // Named after their text: another limit or shape gets other names for the claims (the shape
    // query reads the same row: one name); the same (limit, table), the same object.
    expect(p.leadClaim(2000, 'public.user_login')).toBe(lead);
    expect(new Set([lead, p.leadClaim(5, 'public.user_login'), flagged.leadClaim(2000, 'public.user_login')].flatMap((l) => l.statements.map((st) => st.name))).size).toBe(7);
    const logMode = q.leadClaim(5, "Sales.O'Items").statements;
    expect(logMode).toHaveLength(2); // no row claim in change-log mode
    expect(logMode[0]?.prepare).toBe(`PREPARE ${logMode[0]?.name} AS ${q.claimChanges.replace('LIMIT $1', 'LIMIT 5').replace('$2', "'Sales.O''Items'")}`);
    expect(() => p.leadClaim(-1, 'public.user_login')).toThrow(/whole number/);
    // Change-log batches read the rows of their keys as COPY, the keys as array literals: a quote
    // and a backslash escaped for the array, a ' doubled for the SQL string.
    expect(q.copyReadRows([['1', '2'], ['3', `4"\\'`]])).toBe(`COPY (
SELECT t."Order"::text AS c0, t."line"::text AS c1, t."note"::text AS c2, t."Order"::text AS k0, t."line"::text AS k1
  FROM "Sales"."Order Items" t
 WHERE (t."Order", t."line") IN (SELECT u.k0::int8, u.k1::int2 FROM unnest('{"1","3"}'::text[], '{"2","4\\"\\\\''"}'::text[]) AS u(k0, k1))) TO STDOUT`);
    // …and the batches after a drain's first claim the change log, delete the claimed rows by
    // their tuple ids and read the rows of its keys in one COPY: a row per change, the row joined
    // by its key cast back to each key's type. The CTE names the key columns k0…kN: a key column
    // may be called tid.
    expect(flagged.copyClaimChanges).toBeNull();
    const claimed = q.copyClaimChanges!(5, "Sales.O'Items", '42');
    expect(claimed).toMatch(/^COPY \(\nWITH c AS MATERIALIZED \(\n  SELECT c\.ctid AS tid, c\._version, c\._op, c\."Order" AS k0, c\."line" AS k1\n/);
    expect(claimed).toContain('d AS (DELETE FROM "Sales"."streamer_');
    expect(claimed).toMatch(/ x WHERE x\.ctid = ANY \(ARRAY\(SELECT c\.tid FROM c\)\)\)\nSELECT /);
    expect(claimed).toContain(`END AS op, c._op AS logged\n`);
    // …whose rows a refused message puts back.
    expect(q.restoreChanges).toMatch(/^INSERT INTO "Sales"\."streamer_[^"]+_changes" \(_version, _op, "Order", "line"\)\nSELECT \* FROM unnest\(\$1::bigint\[\], \$2::"char"\[\], \$3::text\[\], \$4::text\[\]\)\n    ON CONFLICT \(_version\) DO NOTHING$/);
    expect(claimed).toContain(`WHERE c._version > 42 AND (c._op = 'T' OR NOT EXISTS (SELECT 1 FROM streamer_failed_rows f WHERE f.table_name = 'Sales.O''Items'`);
    expect(claimed).toContain('LIMIT 5\n     FOR UPDATE OF c SKIP LOCKED)');
    expect(claimed).toContain(`SELECT t."Order"::text AS c0, t."line"::text AS c1, t."note"::text AS c2, c.k0, c.k1, json_build_array(c.k0, c.k1)::text AS key, c._version::text AS version,`);
    expect(claimed).toMatch(/FROM c LEFT JOIN "Sales"\."Order Items" t ON c\._op <> 'T' AND \(t\."Order", t\."line"\) = \(c\.k0::int8, c\.k1::int2\)\) TO STDOUT$/);
    expect(q.copyClaimChanges!(5, 'x')).toContain("WHERE (c._op = 'T' OR");
    expect(() => q.copyClaimChanges!(5, 'x', '1; DROP TABLE x')).toThrow(/version/);
    expect(() => q.copyClaimChanges!(-5, 'x')).toThrow(/whole number/);
  });
});

describe('grants', () => {
  it('the producer: its tables, their change logs, the sequence and its own tables — no more', () => {
    expect(postgresGrants([userLogin, orders], 'streamer_producer', 'public')).toEqual([
      `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'streamer_producer') THEN CREATE ROLE "streamer_producer" LOGIN; END IF; END $$`,
      'GRANT USAGE ON SCHEMA "public" TO "streamer_producer"',
      'GRANT USAGE ON SCHEMA "Sales" TO "streamer_producer"',
      'GRANT USAGE ON SEQUENCE "public"."streamer_version_seq" TO "streamer_producer"',
      'GRANT SELECT, INSERT, UPDATE ON "public"."streamer_failed_rows" TO "streamer_producer"',
      'GRANT SELECT ON "public"."streamer_tables" TO "streamer_producer"',
      'GRANT SELECT, UPDATE ("sent_to_kafka") ON "public"."user_login" TO "streamer_producer"',
      'GRANT SELECT, UPDATE, DELETE ON "public"."streamer_user_login_changes" TO "streamer_producer"',
      'GRANT SELECT ON "Sales"."Order Items" TO "streamer_producer"',
      `GRANT SELECT, UPDATE, DELETE ON ${installCapture(orders, 'public')[0]?.match(/"Sales"\."streamer_[a-z0-9_]+_changes"/)?.[0]} TO "streamer_producer"`,
    ]);
  });

  it('the consumer: SELECT and INSERT on its tables and the dead letters', () => {
    expect(clickhouseGrants([userLogin, orders], 'streamer_consumer', 'analytics')).toEqual([
      "CREATE USER IF NOT EXISTS `streamer_consumer` IDENTIFIED WITH sha256_password BY 'change-me'",
      'GRANT SELECT, INSERT ON `analytics`.`user_login` TO `streamer_consumer`',
      'GRANT SELECT, INSERT ON `analytics`.`Order Items` TO `streamer_consumer`',
      'GRANT SELECT, INSERT ON `analytics`.`streamer_dead_letters` TO `streamer_consumer`',
    ]);
    const text = formatGrants(['GRANT a'], ['GRANT b']);
    expect(text).toMatch(/^-- PostgreSQL: the producer\.[\s\S]*GRANT a;\n\n-- ClickHouse 20\.5 and later[\s\S]*GRANT b;\n$/);
  });
});
