/**
 * Identifiers and literals in generated SQL. Every table and column name comes from the catalog
 * or the user's configuration, so none is trusted: identifiers are always quoted (mixed case,
 * spaces and reserved words work on both sides), and the few values that must be SQL text —
 * ClickHouse 18.16 has no query parameters — are escaped here and nowhere else.
 */

/** A PostgreSQL identifier, always quoted: `"User Login"`, `"order"`. */
export function pgIdent(name: string): string {
  if (name.length === 0 || name.includes('\u0000')) throw new Error(`not a PostgreSQL identifier: ${JSON.stringify(name)}`);
  return `"${name.replace(/"/g, '""')}"`;
}

/** `"schema"."table"`. */
export function pgTable(schema: string, table: string): string {
  return `${pgIdent(schema)}.${pgIdent(table)}`;
}

/** A PostgreSQL string literal (standard_conforming_strings, on since 9.1): `'it''s'`. */
export function pgLiteral(value: string): string {
  if (value.includes('\u0000')) throw new Error('a PostgreSQL string cannot hold a NUL character');
  return `'${value.replace(/'/g, "''")}'`;
}

/** A ClickHouse identifier, always quoted with backquotes (18.16 and current): `` `User Login` ``. */
export function chIdent(name: string): string {
  if (name.length === 0) throw new Error('not a ClickHouse identifier: an empty name');
  return `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;
}

/** A ClickHouse string literal: backslash and quote escaped, control bytes as \xHH. */
export function chLiteral(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}'`;
}

/**
 * A short name for the objects we create per table (trigger functions, the change log), made
 * of [a-z0-9_] only: the table's name lowercased, with the schema first unless it is `public`,
 * and an 8-hex hash of the exact "schema.table" whenever that lowercasing or cutting changed
 * anything — so that "User Login" and "user_login" never share objects. `public.user_login` stays
 * `user_login` (its objects keep the names f141f4e gave them).
 */
export function objectId(schema: string, table: string): string {
  const plain = schema === 'public' ? table : `${schema}_${table}`;
  const safe = plain.toLowerCase().replace(/[^a-z0-9_]+/g, '_');
  if (safe === plain && safe.length <= 40) return safe;
  return `${safe.slice(0, 40)}_${fnv1a(`${schema}.${table}`)}`;
}

/** 32-bit FNV-1a as 8 hex digits: stable, dependency-free, for names only. */
export function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}
