/**
 * Every SQL statement of the PostgreSQL side, as functions of the table spec (pg-boss's plans.js):
 * the capture objects `streamer migrate` installs on a table, and the producer's queries. Values
 * always travel as parameters; only identifiers are interpolated, and those are quoted by
 * identifiers.ts.
 *
 * Versions. Every publication of a row carries a version from one sequence
 * (streamer_version_seq), taken while the row's lock is held, so that a row's versions increase
 * in the order its changes commit:
 *  - flag mode: the producer takes them (afterClaim) after its claim locked and marked the
 *    rows, in the same transaction — or, in the first batch of a pass, which runs alone, in the
 *    claim's RETURNING, after the statement locked and marked each row (leadClaim). Taken before
 *    the lock, a slow claim could pair a newer content with an older version than a faster
 *    producer's;
 *  - deletes, key changes, TRUNCATE and everything in log mode: the trigger takes it, AFTER the
 *    statement (or in a row trigger) — by then the statement holds the lock of every row it
 *    touched, and an INSERT has passed its unique check, which waits for a concurrent DELETE of the
 *    same key to commit. (A BEFORE INSERT trigger would run before that wait: a re-insert could
 *    take a smaller version than the delete it waited for.)
 */
import { createHash } from 'node:crypto';
import { pgIdent, pgLiteral } from '../tables/identifiers.js';
import { mapColumn, type PgColumn } from '../tables/pg-types.js';
import { capabilities } from '../tables/server.js';
import { captureObjects, type TableSpec } from '../tables/spec.js';

/**
 * Begins the producer's batch transaction: its own updates (mark sent) wake nobody, and no
 * statement of it is JIT-compiled. The claims' plans estimate the whole pending backlog under
 * their LIMIT, so on a large backlog their cost passed jit_above_cost (100,000): PostgreSQL then
 * compiled each batch's statement anew (its SQL holds literals, so no plan is reused) — in a
 * change-log sweep of 1,000,000 rows ~4 µs of PostgreSQL CPU per row, for statements that run in
 * milliseconds (bench/README.md "2026-11-27 (one statement per change-log batch)").
 */
export const PRODUCER_BEGIN = "BEGIN; SET LOCAL streamer.producer = 'on'; SET LOCAL jit = off";

/** The capture and columns `streamer migrate` recorded for a table ($1: its name). */
export const RECORDED_SHAPE = 'SELECT capture, columns FROM streamer_tables WHERE table_name = $1';

/** The notification channel of every table; the payload is the table's id. */
export const NOTIFY_CHANNEL = 'streamer';

const col = (c: Pick<PgColumn, 'name'>) => pgIdent(c.name);
const byName = (spec: TableSpec, name: string) => spec.columns.find((c) => c.name === name) as PgColumn;
const keyCols = (spec: TableSpec) => spec.keyColumns.map((k) => byName(spec, k));

/** The key as the text used for the Kafka key and streamer_failed_rows: `42`, or `["1", "x"]` for several columns. */
export function keyTextSql(spec: TableSpec, alias: string): string {
  const ks = spec.keyColumns.map((k) => `${alias}.${pgIdent(k)}::text`);
  return ks.length === 1 ? (ks[0] as string) : `json_build_array(${ks.join(', ')})::text`;
}

/**
 * SQL true when rows `left` and `right` of the table differ in something replicated. Written
 * without naming a column, so that `ALTER TABLE … ALTER COLUMN TYPE / DROP COLUMN / RENAME COLUMN`
 * of the user's table neither trips over our triggers nor makes them fail at run time. (A
 * trigger's `UPDATE OF` list and WHEN clause depend on their columns: PostgreSQL refuses to change
 * their type.) Whole rows compare by their binary image (`*<>`, record_image_ne: a memcmp per
 * column, any type, even one without an equality operator such as json; no text is made of the
 * rows); a value stored in a different binary form with the same meaning would only be published
 * once more. With excluded columns
 * (`ignored`: the flag and those), the rows must also differ as jsonb without them.
 * `left`/`right` are NEW/OLD, or aliases no column of the table is called (wholeRowAliases).
 */
function rowsDiffer(left: string, right: string, ignored: readonly string[]): string {
  const image = `${left} OPERATOR(pg_catalog.*<>) ${right}`;
  if (ignored.length === 0) return image;
  const minus = `ARRAY[${ignored.map(pgLiteral).join(', ')}]::pg_catalog.text[]`;
  return `(${image} AND (pg_catalog.to_jsonb(${left}) OPERATOR(pg_catalog.-) ${minus}) IS DISTINCT FROM (pg_catalog.to_jsonb(${right}) OPERATOR(pg_catalog.-) ${minus}))`;
}

/**
 * Aliases for the transition tables' rows that no column of the table is called: a bare alias is
 * the whole row only then (PostgreSQL reads `n` as the column if there is one, or calls it
 * ambiguous — and the application's UPDATE would fail).
 */
export function wholeRowAliases(spec: TableSpec): { n: string; o: string } {
  const taken = new Set(spec.columns.map((c) => c.name));
  let suffix = '';
  for (let i = 2; taken.has(`streamer_n${suffix}`) || taken.has(`streamer_o${suffix}`); i++) suffix = String(i);
  return { n: pgIdent(`streamer_n${suffix}`), o: pgIdent(`streamer_o${suffix}`) };
}

// ---------------------------------------------------------------------------------- install

/**
 * The statements that install (or bring up to date) the capture of a table: idempotent, run in
 * one transaction by `streamer migrate`. The change log holds the key columns as their text (the
 * Kafka key's text), so that a change of a key column's type does not touch it.
 *
 * Functions that write our change log run as their owner (SECURITY DEFINER, with a search_path
 * of pg_catalog only and every name qualified): the application's role writes the table, not our
 * change log. Those that run on every INSERT statement or every updated row — the wake-up and the
 * flag mode's row check — need no privilege and run as the caller, without a SET clause (a
 * function with one saves and restores the settings on every call). Every name in them is
 * qualified, so the caller's search_path cannot change what they call.
 * `schema` is where the migrations put streamer's own objects (streamer_version_seq,
 * streamer_notify: the migrating session's current schema).
 */
export function installCapture(spec: TableSpec, schema: string): string[] {
  const o = captureObjects(spec);
  const t = spec.qualified;
  const keys = keyCols(spec);
  const id = pgLiteral(spec.id);
  const nextval = `nextval(${pgLiteral(`${pgIdent(schema)}.streamer_version_seq`)})`;
  const notify = `${pgIdent(schema)}.streamer_notify(${id})`;
  const definer = `LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS`;
  const invoker = `LANGUAGE plpgsql AS`;
  // streamer_notify (sql/postgres/0006) inline, with the same lock key: one NOTIFY per table per
  // 10 ms across both.
  const wake = `IF pg_catalog.pg_try_advisory_xact_lock(1937011301,
             ((pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) * 100)::pg_catalog.int8 % 2000000000)::pg_catalog.int4
              OPERATOR(pg_catalog.#) pg_catalog.hashtext(${id}))) THEN
           PERFORM pg_catalog.pg_notify('streamer', ${id});
         END IF;`;
  // The functions live beside the table.
  const fn = (what: string) => `${pgIdent(spec.schema)}.${pgIdent(o.fn(what))}`;
  const keyList = keys.map(col).join(', ');
  const out: string[] = [
    `CREATE TABLE IF NOT EXISTS ${o.changes} (
       _version bigint PRIMARY KEY,
       _op "char" NOT NULL,
       ${keys.map((k) => `${col(k)} text`).join(',\n       ')}
     )`,
    `COMMENT ON TABLE ${o.changes} IS ${pgLiteral(`streamer: changes of ${spec.schema}.${spec.table} not published yet (I insert, U update, D delete, T truncate)`)}`,
    // Wakes the producer on any change: of the transactions open together, one NOTIFY per table
    // per 10 ms (streamer_notify, 0006).
    `CREATE OR REPLACE FUNCTION ${fn('notify')}() RETURNS trigger ${invoker} $$
     BEGIN
       ${wake}
       RETURN NULL;
     END $$`,
    `CREATE OR REPLACE FUNCTION ${fn('truncated')}() RETURNS trigger ${definer} $$
     BEGIN
       -- (The log's own columns are _version and _op: a key column may be called version or op.)
       -- What was pending is moot: the marker tells the consumer to delete every older version.
       DELETE FROM ${o.changes};
       INSERT INTO ${o.changes} (_version, _op) VALUES (${nextval}, 'T');
       PERFORM ${notify};
       RETURN NULL;
     END $$`,
    `DROP TRIGGER IF EXISTS ${pgIdent(o.truncatedTrigger)} ON ${t}`,
    `CREATE TRIGGER ${pgIdent(o.truncatedTrigger)} AFTER TRUNCATE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${fn('truncated')}()`,
  ];
  if (spec.capture.kind === 'flag') {
    const flag = pgIdent(spec.capture.column);
    out.push(
      // Finding work costs O(pending rows), not O(table). `IS NOT TRUE`, so that a NULL flag is sent.
      `CREATE INDEX IF NOT EXISTS ${pgIdent(o.pendingIndex)} ON ${t} (${keyList}) WHERE ${flag} IS NOT TRUE`,
      `DROP TRIGGER IF EXISTS ${pgIdent(o.insertedTrigger)} ON ${t}`,
      `CREATE TRIGGER ${pgIdent(o.insertedTrigger)} AFTER INSERT ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${fn('notify')}()`,
      // An update that changes a replicated column makes the row pending again (the seed's meaning of
      // the flag: TRUE = the current version is in Kafka); one that changes the key also leaves a
      // delete of the old key. Every update but the producer's own "mark sent" runs the function;
      // the WHEN clause names only the flag. Rows compare whole (rowsDiffer; the flag in them changes
      // only when an operator resets it, which makes it FALSE anyway); with excluded columns, also by
      // their jsonb without those (slower: measured with pgbench, bench part g). The function names
      // the flag (a generic jsonb_populate_record cost ~10 % of UPDATE throughput more): rename or
      // drop the flag column only after changing flagColumn and running "streamer migrate".
      `CREATE OR REPLACE FUNCTION ${fn('key_changed')}(${keys.map((_, i) => `k${i} text`).join(', ')}) RETURNS void ${definer} $$
       BEGIN
         INSERT INTO ${o.changes} (_version, _op, ${keyList}) VALUES (${nextval}, 'D', ${keys.map((_, i) => `k${i}`).join(', ')});
       END $$`,
      `CREATE OR REPLACE FUNCTION ${fn('changed')}() RETURNS trigger ${invoker} $$
       BEGIN
         IF ${keys.map((k) => `OLD.${col(k)} IS DISTINCT FROM NEW.${col(k)}`).join(' OR ')} THEN
           PERFORM ${fn('key_changed')}(${keys.map((k) => `OLD.${col(k)}::pg_catalog.text`).join(', ')});
         END IF;
         IF ${spec.exclude.length === 0 ? rowsDiffer('NEW', 'OLD', []) : rowsDiffer('NEW', 'OLD', [spec.capture.column, ...spec.exclude])} THEN
           NEW.${flag} := FALSE;
         END IF;
         RETURN NEW;
       END $$`,
      `DROP TRIGGER IF EXISTS ${pgIdent(o.changedTrigger)} ON ${t}`,
      `CREATE TRIGGER ${pgIdent(o.changedTrigger)} BEFORE UPDATE ON ${t}
       FOR EACH ROW WHEN (NOT (OLD.${flag} IS NOT TRUE AND NEW.${flag} IS TRUE)) EXECUTE FUNCTION ${fn('changed')}()`,
      // Any UPDATE but the producer's own "mark sent" wakes the producer, once per statement: the
      // rows it made pending above, or an operator's re-send (flag set back to FALSE). (Per row, the
      // 10 ms notification buckets of a long statement would take one lock each.) The producer
      // marks its transactions with streamer.producer (PRODUCER_MARK).
      `CREATE OR REPLACE FUNCTION ${fn('updated')}() RETURNS trigger ${invoker} $$
       BEGIN
         IF pg_catalog.current_setting('streamer.producer', true) IS DISTINCT FROM 'on' THEN
           ${wake}
         END IF;
         RETURN NULL;
       END $$`,
      `DROP TRIGGER IF EXISTS ${pgIdent(o.resetTrigger)} ON ${t}`,
      `DROP TRIGGER IF EXISTS ${pgIdent(o.updatedTrigger)} ON ${t}`,
      `CREATE TRIGGER ${pgIdent(o.updatedTrigger)} AFTER UPDATE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${fn('updated')}()`,
      // Deletes leave no row to flag: their keys go to the change log, with their version.
      `CREATE OR REPLACE FUNCTION ${fn('deleted')}() RETURNS trigger ${definer} $$
       BEGIN
         INSERT INTO ${o.changes} (_version, _op, ${keyList})
         SELECT ${nextval}, 'D', ${keys.map((k) => `g.${col(k)}::text`).join(', ')} FROM streamer_gone g;
         PERFORM ${notify};
         RETURN NULL;
       END $$`,
      `DROP TRIGGER IF EXISTS ${pgIdent(o.deletedTrigger)} ON ${t}`,
      `CREATE TRIGGER ${pgIdent(o.deletedTrigger)} AFTER DELETE ON ${t} REFERENCING OLD TABLE AS streamer_gone
       FOR EACH STATEMENT EXECUTE FUNCTION ${fn('deleted')}()`,
    );
  } else {
    const { n, o: old } = wholeRowAliases(spec);
    const changed = rowsDiffer(n, old, spec.exclude);
    const joinKeys = keys.map((k) => `${n}.${col(k)} = ${old}.${col(k)}`).join(' AND ');
    out.push(
      `CREATE OR REPLACE FUNCTION ${fn('logged')}() RETURNS trigger ${definer} $$
       BEGIN
         IF TG_OP = 'INSERT' THEN
           INSERT INTO ${o.changes} (_version, _op, ${keyList})
           SELECT ${nextval}, 'I', ${keys.map((k) => `${n}.${col(k)}::text`).join(', ')} FROM streamer_new ${n};
         ELSIF TG_OP = 'DELETE' THEN
           INSERT INTO ${o.changes} (_version, _op, ${keyList})
           SELECT ${nextval}, 'D', ${keys.map((k) => `${old}.${col(k)}::text`).join(', ')} FROM streamer_old ${old};
         ELSE
           -- One pass over both transition tables, paired by key: a row whose replicated values
           -- changed, or a key that is new (an update that changed the key), is an update under its
           -- (new) key; an old key no new row has is a delete.
           INSERT INTO ${o.changes} (_version, _op, ${keyList})
           SELECT ${nextval}, CASE WHEN ${n}.${col(keys[0] as PgColumn)} IS NULL THEN 'D' ELSE 'U' END,
                  ${keys.map((k) => `CASE WHEN ${n}.${col(keys[0] as PgColumn)} IS NULL THEN ${old}.${col(k)}::text ELSE ${n}.${col(k)}::text END`).join(',\n                  ')}
             FROM streamer_new ${n} FULL JOIN streamer_old ${old} ON ${joinKeys}
            WHERE ${n}.${col(keys[0] as PgColumn)} IS NULL OR ${old}.${col(keys[0] as PgColumn)} IS NULL OR ${changed};
         END IF;
         PERFORM ${notify};
         RETURN NULL;
       END $$`,
      ...(['INSERT', 'UPDATE', 'DELETE'] as const).flatMap((op) => {
        const name = pgIdent(`${o.logTrigger}_${op.toLowerCase()}`);
        const ref = op === 'INSERT' ? 'NEW TABLE AS streamer_new' : op === 'DELETE' ? 'OLD TABLE AS streamer_old' : 'OLD TABLE AS streamer_old NEW TABLE AS streamer_new';
        return [`DROP TRIGGER IF EXISTS ${name} ON ${t}`, `CREATE TRIGGER ${name} AFTER ${op} ON ${t} REFERENCING ${ref} FOR EACH STATEMENT EXECUTE FUNCTION ${fn('logged')}()`];
      }),
    );
  }
  return out;
}

/** Objects of f141f4e's user_login capture that the spec-driven install replaces. */
export const LEGACY_OBJECTS = [
  'DROP FUNCTION IF EXISTS streamer_notify_user_login_inserted() CASCADE',
  'DROP FUNCTION IF EXISTS streamer_notify_user_login() CASCADE',
];

// ------------------------------------------------------------------------- the producer

/**
 * A statement each session PREPAREs once (SQL PREPARE, not transactional: it outlives a rollback)
 * and then EXECUTEs. Named after its text, so that the SQL of a new shape gets new names.
 */
export interface PreparedStatement {
  name: string;
  /** `PREPARE name AS …` */
  prepare: string;
}

/**
 * Begins the first batch of a pass (ProducerPlans.leadClaim): PRODUCER_BEGIN, and for this
 * transaction only, no sequential scan and no sort where an index gives the rows in order. Its
 * prepared statements are planned once, at their first EXECUTE, and again after PostgreSQL
 * invalidates the plan (an ANALYZE, autovacuum's included, or DDL of a table they read) — always
 * in this transaction. A plan is made for the table as it is then: made while it was empty and
 * never analyzed (PostgreSQL then assumes ten pages, ~400 rows), the claim's was a sequential scan,
 * a sort and a scan for the tuple ids, and it was kept as the table grew, until autovacuum
 * analyzed the table: a claim went from 0.6 to 1.7 ms as the table grew to 10,000
 * rows, and at 1,000 inserts/s commit → Kafka p50 from 7 to 22–28 ms within 30 s (bench/README.md
 * "2026-11-27 (prepared claims)"). With these, the plan reads the pending index in key order and
 * marks the rows by tuple id (a Tid Scan), however small the table looked when it was made.
 * The batch's later statements (the rows read in log mode, the change-log delete, the failed
 * rows) run under the same settings: they read by key (a configured key without an index is
 * still read by a sequential scan, the only way there is; the settings only make other ways win).
 */
export const LEAD_BEGIN = `${PRODUCER_BEGIN}; SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off`;

/** The first batch's claims (ProducerPlans.leadClaim): the statements to prepare, and the query that runs them. */
export interface LeadClaim {
  statements: PreparedStatement[];
  /** One round trip: LEAD_BEGIN, then an EXECUTE of each statement. */
  text: string;
  /** How many results come before the statements' (LEAD_BEGIN's). */
  before: number;
}

export function preparedStatement(sql: string): PreparedStatement {
  const name = `streamer_${createHash('sha1').update(sql).digest('hex').slice(0, 24)}`;
  return { name, prepare: `PREPARE ${name} AS ${sql}` };
}

/** The SQL of one table, prepared once per producer. */
export interface ProducerPlans {
  /**
   * Flag mode: claims pending rows and marks them sent, in one statement. $1 limit, $2 table name
   * (for streamer_failed_rows). Columns c0…cN (text / JSON), key, and with several key columns
   * k0…kN (with one, `key` is its text); their versions come
   * after (afterClaim). The batch's transaction commits only once Kafka has every message (or
   * rolls back: the rows stay pending).
   */
  claimRows: string | null;
  /**
   * Flag mode: claimRows as `COPY (…) TO STDOUT`, values as literals (COPY takes no parameters),
   * and a last column, is_last (true for the row of the highest key claimed): the batches after a
   * drain's first read their rows as bytes (src/tables/copy-rows.ts). With
   * `after` (the text of each key column of a batch's `is_last` row), the rows after that key: the
   * next batch of a drain starts there instead of reading past the rows the batches in flight hold
   * locked (ClaimCursor in producer.ts).
   */
  copyClaim: ((limit: number, table: string, after?: readonly string[]) => string) | null;
  /** Flag mode: $1… one text[] per key column: claimed rows Kafka refused, pending again (and recorded failed). */
  unmarkRows: string | null;
  /** $1 limit, $2 table name. Columns version, op, k0…kN (text), key. */
  claimChanges: string;
  /**
   * What a batch runs after its row claim, in order and under the table's BatchOrder, as one
   * multi-statement query (one round trip instead of three, on the live path; values as literals,
   * which such a query needs): `versions` versions ascending, as one text in one row, column v:
   * `7,8,9`, NULL for none (5,000 versions cost the producer ~1 µs each as rows, ~0.2 as one text)
   * — those of the rows the flag claim locked (see "Versions" above: taken in claim order, while
   * the claims themselves run side by side); the change-log claim (claimChanges; with
   * `afterVersion`, of the versions above it: the highest a batch before claimed, ClaimCursor in
   * producer.ts); the table's RECORDED_SHAPE, read after both claims.
   */
  afterClaim(versions: number, limit: number, table: string, afterVersion?: string): string;
  /**
   * The first batch of a pass (which runs alone) in ONE round trip instead of three: BEGIN (as
   * LEAD_BEGIN), the flag claim with each row's version in its RETURNING (column v: taken
   * after the statement locked and marked the row, as afterClaim's are), the change-log claim and
   * RECORDED_SHAPE — a multi-statement query. Results in that order: LEAD_BEGIN's (`before`),
   * the claimed rows (flag mode only), the change-log rows, the shape. On the live path every
   * round trip counts: a write to a local TCP socket cost the producer ~0.1 ms of CPU here
   * (bench/README.md "2026-11-27 (later)").
   *
   * The three statements are PREPAREd once per session, values as literals (`statements`), and
   * the query EXECUTEs them: planned as literal SQL on every batch, they cost PostgreSQL ~0.4 ms
   * of CPU per live batch, more than running them (bench/README.md "2026-11-27 (prepared
   * claims)"). Having no parameters, each gets one plan at its first run, made again only when
   * PostgreSQL invalidates it; LEAD_BEGIN says why that plan reads the pending index even when it
   * was made on an empty table. (Without it, and with parameters, a prepared claim kept a plan
   * made for an empty table and slowed down as the table grew: bench/README.md "2026-11-27
   * (later)".) The same (limit, table) returns the same object.
   */
  leadClaim(limit: number, table: string): LeadClaim;
  /** $1 bigint[]: the change-log rows published. */
  deleteChanges: string;
  /**
   * Log mode: the rows of these keys (the text of each key column of each) that exist, as `COPY
   * (…) TO STDOUT`, the keys as text[] literals: fields c0…cN, then k0…kN (text). The rows are
   * read as bytes and their messages written from them (src/tables/copy-rows.ts).
   */
  copyReadRows(keys: ReadonlyArray<readonly string[]>): string;
  /**
   * Log mode, the batches after a drain's first: the change-log claim (claimChanges, after
   * `afterVersion` as in afterClaim), the claimed change-log rows deleted (by their tuple ids, as
   * the flag claim marks its rows) and the rows as they are now of the keys it claimed, in ONE
   * statement, `COPY (…) TO STDOUT`: the producer neither parses a row per change, nor sends the
   * keys back (copyReadRows), nor their versions (deleteChanges). The transaction commits only
   * once Kafka has every message; the rows of a message Kafka refuses are put back
   * (restoreChanges). Null in flag mode (its batches claim the change log in afterClaim).
   * A row per claimed change: c0…cN (the key's row as it is now; NULL when it has none), k0…kN
   * (text), key, version, op `U` (the key's row is there), `D` (it is not) or `T` (a truncate
   * marker: every other field NULL), and the change's own `_op`. A key changed several times comes
   * once per change, with the same row: the producer keeps the highest version (producer.ts
   * copiedChanges). Grouping in SQL instead (GROUP BY, string_agg) cost PostgreSQL more than the
   * producer saved.
   */
  copyClaimChanges: ((limit: number, table: string, afterVersion?: string) => string) | null;
  /** $1 bigint[] versions, $2 "char"[] ops, $3… one text[] per key column: change-log rows copyClaimChanges deleted, put back. */
  restoreChanges: string;
  /** Rows pending ($1 table name): flagged rows not failed + change-log rows not failed. */
  countPending: string;
}

/** `table`: the SQL of the table's name (a parameter, or a literal). */
const failedFilter = (spec: TableSpec, alias: string, table = '$2') =>
  `NOT EXISTS (SELECT 1 FROM streamer_failed_rows f WHERE f.table_name = ${table} AND f.key = ${keyTextSql(spec, alias)})`;

/**
 * `(k1, k2) IN (SELECT … FROM unnest($1::text[], $2::text[]))`, the text cast back to each key's
 * type; `arrays`: the SQL of each text[] instead of the parameters.
 */
function keyIn(spec: TableSpec, alias: string, arrays?: string[]): string {
  const keys = keyCols(spec);
  const params = (arrays ?? keys.map((_, i) => `$${1 + i}::text[]`)).join(', ');
  const casts = keys.map((k, i) => `u.k${i}::${k.type}`).join(', ');
  return `(${keys.map((k) => `${alias}.${col(k)}`).join(', ')}) IN (SELECT ${casts} FROM unnest(${params}) AS u(${keys.map((_, i) => `k${i}`).join(', ')}))`;
}

/** A text[] literal of these values (none NULL): `{"a","b \"c\""}`. */
const arrayLiteral = (values: readonly string[]) => `{${values.map((v) => `"${v.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;

/** `(a, b)` for several values, `a` for one: a row comparison's side. */
const rowOf = (values: readonly string[]) => (values.length === 1 ? (values[0] as string) : `(${values.join(', ')})`);

/** A change-log version (bigint text) if it is one (it goes into SQL text); throws otherwise. */
function versionLiteral(v: string): string {
  if (!/^\d{1,19}$/.test(v)) throw new Error(`bug: ${JSON.stringify(v)} in a statement where a version belongs`);
  return v;
}

/** `n` if it is a whole number ≥ 0 (it goes into SQL text); throws otherwise. */
function wholeNumber(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`bug: ${n} in a statement where a whole number belongs`);
  return n;
}

export function producerPlans(spec: TableSpec): ProducerPlans {
  const o = captureObjects(spec);
  const caps = capabilities({ major: 99, minor: 0 }); // the select does not depend on the server
  const selects = spec.columns.map((c, i) => {
    const m = mapColumn(c, caps);
    if (!m.ok) throw new Error(`bug: ${c.name} was not refused by buildSpec`);
    return `${m.mapping.select(`t.${col(c)}`)} AS c${i}`;
  });
  const orderKeys = spec.keyColumns.map((k) => `t.${pgIdent(k)}`).join(', ');
  const keySelects = keyCols(spec).map((k, i) => `c.${col(k)}::text AS k${i}`);
  let claimRows: string | null = null;
  let claimRowsSql: ((limit: string, table: string, o?: { versions?: boolean; after?: string[]; last?: boolean }) => string) | null = null;
  let copyClaim: ProducerPlans['copyClaim'] = null;
  let unmarkRows: string | null = null;
  if (spec.capture.kind === 'flag') {
    const flag = pgIdent(spec.capture.column);
    // The CTE locks the pending rows (skipping those another batch holds); the UPDATE marks them
    // sent through their tuple ids and returns their columns. One statement instead of a SELECT
    // and an UPDATE by key: the rows are not looked up again (issue 14: ~20 % less PostgreSQL time
    // per row). A row updated and committed by another session between the statement's snapshot
    // and the lock has a tuple id the snapshot does not see: it is neither marked nor returned,
    // and stays pending.
    // `versions`: each row's version in its RETURNING (leadClaim); `after`: the SQL of each key
    // column's value the claim starts after, and `last`: is_last in its RETURNING (copyClaim).
    claimRowsSql = (limit: string, table: string, o: { versions?: boolean; after?: string[]; last?: boolean } = {}) => `
WITH c AS MATERIALIZED (
  SELECT t.ctid AS tid${o.last ? `, ${keyCols(spec).map((k, i) => `t.${col(k)} AS k${i}`).join(', ')}` : ''}
    FROM ${spec.qualified} t
   WHERE t.${flag} IS NOT TRUE${o.after ? ` AND ${rowOf(keyCols(spec).map((k) => `t.${col(k)}`))} > ${rowOf(o.after)}` : ''} AND ${failedFilter(spec, 't', table)}
   ORDER BY ${orderKeys}
   LIMIT ${limit}
     FOR UPDATE OF t SKIP LOCKED)
UPDATE ${spec.qualified} t SET ${flag} = TRUE
 WHERE t.ctid = ANY (ARRAY(SELECT c.tid FROM c))
RETURNING ${selects.join(', ')}, ${keyTextSql(spec, 't')} AS key${keyCols(spec).length === 1 ? '' : `, ${keyCols(spec).map((k, i) => `t.${col(k)}::text AS k${i}`).join(', ')}`}${o.versions ? `, nextval('streamer_version_seq')::text AS v` : ''}${
      o.last
        ? `,
          ${rowOf(keyCols(spec).map((k) => `t.${col(k)}`))} = (SELECT ${keyCols(spec).map((_, i) => `c.k${i}`).join(', ')} FROM c ORDER BY ${keyCols(spec).map((_, i) => `c.k${i} DESC`).join(', ')} LIMIT 1) AS is_last`
        : ''
    }`;
    claimRows = claimRowsSql('$1', '$2');
    const sql = claimRowsSql;
    copyClaim = (limit, table, after) =>
      `COPY (${sql(String(wholeNumber(limit)), pgLiteral(table), { after: after?.map((v, i) => `${pgLiteral(v)}::${(keyCols(spec)[i] as PgColumn).type}`), last: true })}) TO STDOUT`;
    unmarkRows = `UPDATE ${spec.qualified} t SET ${flag} = FALSE WHERE ${keyIn(spec, 't')}`;
  }
  const claimChangesSql = (limit: string, table: string, afterVersion?: string) => `
SELECT c._version::text AS version, c._op AS op, ${keySelects.join(', ')}, CASE WHEN c._op = 'T' THEN NULL ELSE ${keyTextSql(spec, 'c')} END AS key
  FROM ${o.changes} c
 WHERE ${afterVersion === undefined ? '' : `c._version > ${afterVersion} AND `}(c._op = 'T' OR ${failedFilter(spec, 'c', table)})
 ORDER BY c._version
 LIMIT ${limit}
   FOR UPDATE OF c SKIP LOCKED`;
  const claimChanges = claimChangesSql('$1', '$2');
  const afterClaim = (versions: number, limit: number, table: string, afterVersion?: string) =>
    [
      `SELECT string_agg(s.v::text, ',' ORDER BY s.v) AS v FROM (SELECT nextval('streamer_version_seq') AS v FROM generate_series(1, ${wholeNumber(versions)})) s`,
      claimChangesSql(String(wholeNumber(limit)), pgLiteral(table), afterVersion === undefined ? undefined : versionLiteral(afterVersion)),
      RECORDED_SHAPE.replace('$1', pgLiteral(table)),
    ].join(';\n');
  const leads = new Map<string, LeadClaim>();
  const leadClaim = (limit: number, table: string): LeadClaim => {
    const id = `${limit}\0${table}`;
    let lead = leads.get(id);
    if (!lead) {
      const statements = [
        ...(claimRowsSql ? [claimRowsSql(String(wholeNumber(limit)), pgLiteral(table), { versions: true })] : []),
        claimChangesSql(String(wholeNumber(limit)), pgLiteral(table)),
        RECORDED_SHAPE.replace('$1', pgLiteral(table)),
      ].map(preparedStatement);
      lead = { statements, text: [LEAD_BEGIN, ...statements.map((st) => `EXECUTE ${st.name}`)].join(';\n'), before: LEAD_BEGIN.split(';').length };
      leads.set(id, lead);
    }
    return lead;
  };
  const deleteChanges = `DELETE FROM ${o.changes} WHERE _version = ANY($1::bigint[])`;
  const copyReadRows = (keys: ReadonlyArray<readonly string[]>) => `COPY (
SELECT ${selects.join(', ')}, ${keyCols(spec).map((k, i) => `t.${col(k)}::text AS k${i}`).join(', ')}
  FROM ${spec.qualified} t
 WHERE ${keyIn(spec, 't', keyCols(spec).map((_, i) => `${pgLiteral(arrayLiteral(keys.map((k) => k[i] as string)))}::text[]`))}) TO STDOUT`;
  const changeKeys = keyCols(spec).map(col);
  const copyClaimChanges: ProducerPlans['copyClaimChanges'] =
    spec.capture.kind === 'flag'
      ? null
      : (limit, table, afterVersion) => `COPY (
WITH c AS MATERIALIZED (
  SELECT c.ctid AS tid, c._version, c._op, ${changeKeys.map((k, i) => `c.${k} AS k${i}`).join(', ')}
    FROM ${o.changes} c
   WHERE ${afterVersion === undefined ? '' : `c._version > ${versionLiteral(afterVersion)} AND `}(c._op = 'T' OR ${failedFilter(spec, 'c', pgLiteral(table))})
   ORDER BY c._version
   LIMIT ${wholeNumber(limit)}
     FOR UPDATE OF c SKIP LOCKED),
d AS (DELETE FROM ${o.changes} x WHERE x.ctid = ANY (ARRAY(SELECT c.tid FROM c)))
SELECT ${selects.join(', ')}, ${changeKeys.map((_, i) => `c.k${i}`).join(', ')}, ${changeKeys.length === 1 ? 'c.k0' : `json_build_array(${changeKeys.map((_, i) => `c.k${i}`).join(', ')})::text`} AS key, c._version::text AS version,
       CASE WHEN c._op = 'T' THEN 'T' WHEN t.${changeKeys[0]} IS NULL THEN 'D' ELSE 'U' END AS op, c._op AS logged
  FROM c LEFT JOIN ${spec.qualified} t ON c._op <> 'T' AND ${rowOf(keyCols(spec).map((k) => `t.${col(k)}`))} = ${rowOf(keyCols(spec).map((k, i) => `c.k${i}::${k.type}`))}) TO STDOUT`;
  const restoreChanges = `INSERT INTO ${o.changes} (_version, _op, ${changeKeys.join(', ')})
SELECT * FROM unnest($1::bigint[], $2::"char"[], ${changeKeys.map((_, i) => `$${3 + i}::text[]`).join(', ')})
    ON CONFLICT (_version) DO NOTHING`;
  const pendingRows =
    spec.capture.kind === 'flag' ? `(SELECT count(*) FROM ${spec.qualified} t WHERE t.${pgIdent(spec.capture.column)} IS NOT TRUE AND ${failedFilter(spec, 't').replace(/\$2/g, '$1')})` : '0';
  const countPending = `SELECT (${pendingRows} + (SELECT count(*) FROM ${o.changes} c WHERE c._op = 'T' OR ${failedFilter(spec, 'c').replace(/\$2/g, '$1')}))::bigint AS n`;
  return { claimRows, copyClaim, unmarkRows, claimChanges, afterClaim, leadClaim, deleteChanges, copyReadRows, copyClaimChanges, restoreChanges, countPending };
}
