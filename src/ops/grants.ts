/**
 * `streamer grants`: the least privileges of the producer (PostgreSQL) and the consumer
 * (ClickHouse) for the configured tables, as SQL to run once after `streamer migrate`. Generated
 * from the same specs as the capture, so that it names every object the producer touches — which
 * a fixed file cannot once the tables are the user's (test/integration/least-privilege.test.ts
 * runs the pipeline under exactly these grants).
 *
 * The application's roles need nothing: what the capture triggers write, they write as their
 * owner (SECURITY DEFINER, src/capture/plans.ts); the rest needs no privilege but EXECUTE, which
 * PostgreSQL grants PUBLIC by default.
 */
import { chIdent, pgIdent, pgLiteral } from '../tables/identifiers.js';
import { captureObjects, type TableSpec } from '../tables/spec.js';
import { DEAD_LETTERS_TABLE } from '../sink/dead-letters.js';

/**
 * The producer's grants. `schema`: where `streamer migrate` put streamer's own objects (the
 * migrating session's current schema).
 */
export function postgresGrants(specs: readonly TableSpec[], role: string, schema: string): string[] {
  const r = pgIdent(role);
  const own = (name: string) => `${pgIdent(schema)}.${pgIdent(name)}`;
  const schemas = [...new Set([schema, ...specs.map((s) => s.schema)])];
  const out = [
    `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${pgLiteral(role)}) THEN CREATE ROLE ${r} LOGIN; END IF; END $$`,
    ...schemas.map((s) => `GRANT USAGE ON SCHEMA ${pgIdent(s)} TO ${r}`),
    // nextval: a version for every publication.
    `GRANT USAGE ON SEQUENCE ${own('streamer_version_seq')} TO ${r}`,
    // Rows Kafka refuses for good are recorded, per table and key.
    `GRANT SELECT, INSERT, UPDATE ON ${own('streamer_failed_rows')} TO ${r}`,
    // What migrate installed: the producer checks that a table's shape still matches it.
    `GRANT SELECT ON ${own('streamer_tables')} TO ${r}`,
  ];
  for (const spec of specs) {
    // SELECT … FOR UPDATE needs UPDATE on some column: the flag, which "mark sent" updates anyway.
    const flag = spec.capture.kind === 'flag' ? `, UPDATE (${pgIdent(spec.capture.column)})` : '';
    out.push(`GRANT SELECT${flag} ON ${spec.qualified} TO ${r}`);
    // The change log: claimed with FOR UPDATE, deleted once published.
    out.push(`GRANT SELECT, UPDATE, DELETE ON ${captureObjects(spec).changes} TO ${r}`);
  }
  return out;
}

/** The consumer's grants (ClickHouse 20.5 and later: SQL users). */
export function clickhouseGrants(specs: readonly TableSpec[], user: string, database: string): string[] {
  const u = chIdent(user);
  const db = chIdent(database);
  return [
    `CREATE USER IF NOT EXISTS ${u} IDENTIFIED WITH sha256_password BY 'change-me'`,
    // SELECT: the existence check of a retried batch, and a TRUNCATE's tombstones (INSERT … SELECT).
    ...specs.map((s) => `GRANT SELECT, INSERT ON ${db}.${chIdent(s.clickhouseTable)} TO ${u}`),
    `GRANT SELECT, INSERT ON ${db}.${chIdent(DEAD_LETTERS_TABLE)} TO ${u}`,
  ];
}

/** Both, as one script with comments (each part also runs on its own: `--postgres`, `--clickhouse`). */
export function formatGrants(pgSql: string[] | null, chSql: string[] | null): string {
  const parts: string[] = [];
  if (pgSql) {
    parts.push(
      '-- PostgreSQL: the producer. Run as the owner of the tables, after "streamer migrate", then set',
      "-- a password (ALTER ROLE … PASSWORD '…') and use the role in the producer's DATABASE_URL.",
      ...pgSql.map((s) => `${s};`),
    );
  }
  if (chSql) {
    if (parts.length) parts.push('');
    parts.push(
      '-- ClickHouse 20.5 and later: the consumer. Change the password, then set CLICKHOUSE_USER and',
      '-- CLICKHOUSE_PASSWORD of the consumer. (18.16 has no SQL users: a users.d entry with',
      '-- <allow_databases> restricts a user to the database instead.)',
      ...chSql.map((s) => `${s};`),
    );
  }
  return `${parts.join('\n')}\n`;
}
