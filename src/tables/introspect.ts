/**
 * Reads a table's columns, types, NOT NULL and primary key from pg_catalog, and turns a
 * TableConfig into a TableSpec — or refuses it with one line that names the table, the column and
 * the fix. Run at migrate and at every start of the producer, and by verify.
 */
import type pg from 'pg';
import { ConfigError } from '../common/errors.js';
import { mapColumn, NULL_FLAG_SUFFIX, SUPPORTED_TYPES, type PgColumn } from './pg-types.js';
import { capabilities } from './server.js';
import { META_COLUMNS, MESSAGE_FIELDS, objectId, type TableConfig, type TableSpec } from './spec.js';
import { pgTable } from './identifiers.js';

export const TABLE_OID = `
SELECT c.oid::bigint AS oid, c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1 AND c.relname = $2`;

/** Domains resolve to their base type, for the column and for an array's element. */
export const TABLE_COLUMNS = `
SELECT a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type,
       COALESCE(NULLIF(a.atttypmod, -1), t.typtypmod, -1) AS typmod,
       a.attnotnull AS not_null,
       COALESCE(bt.typname, t.typname) AS typname,
       COALESCE(bt.typtype, t.typtype) AS typtype,
       COALESCE(ebt.typname, et.typname) AS elem_typname,
       COALESCE(ebt.typtype, et.typtype) AS elem_typtype
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
  LEFT JOIN pg_type et ON COALESCE(bt.typcategory, t.typcategory) = 'A' AND et.oid = COALESCE(bt.typelem, t.typelem)
  LEFT JOIN pg_type ebt ON et.typtype = 'd' AND ebt.oid = et.typbasetype
 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum`;

export const PRIMARY_KEY = `
SELECT a.attname AS name
  FROM pg_index i
  CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
 WHERE i.indrelid = $1 AND i.indisprimary
 ORDER BY k.ord`;

export interface Catalog {
  columns: PgColumn[];
  primaryKey: string[];
}

type Queryable = Pick<pg.ClientBase, 'query'> | Pick<pg.Pool, 'query'>;

/** The table's columns and primary key; null when there is no such table or view. */
export async function readCatalog(db: Queryable, schema: string, table: string): Promise<Catalog | null> {
  const rel = (await db.query<{ oid: string; relkind: string }>(TABLE_OID, [schema, table])).rows[0];
  if (!rel) return null;
  if (rel.relkind !== 'r' && rel.relkind !== 'p') {
    throw new ConfigError(`${schema}.${table} is not a table (relkind ${rel.relkind}): streamer replicates tables, not views — list the table the view reads from in STREAMER_TABLES`);
  }
  const cols = await db.query<{ name: string; type: string; typmod: number; not_null: boolean; typname: string; typtype: string; elem_typname: string | null; elem_typtype: string | null }>(TABLE_COLUMNS, [rel.oid]);
  const pk = await db.query<{ name: string }>(PRIMARY_KEY, [rel.oid]);
  return {
    columns: cols.rows.map((c) => ({
      name: c.name,
      type: c.type,
      typname: c.typname,
      typtype: c.typtype,
      element: c.elem_typname ? { typname: c.elem_typname, typtype: c.elem_typtype ?? 'b' } : null,
      typmod: Number(c.typmod),
      notNull: c.not_null,
    })),
    primaryKey: pk.rows.map((r) => r.name),
  };
}

const RESERVED = new Set<string>([...META_COLUMNS, ...MESSAGE_FIELDS]);

/** TableConfig + catalog → TableSpec, or one clear ConfigError. */
export function buildSpec(config: TableConfig, catalog: Catalog | null): TableSpec {
  const name = `${config.schema}.${config.table}`;
  if (!catalog) throw new ConfigError(`PostgreSQL has no table ${name} (STREAMER_TABLES) — create it, or check the name and DATABASE_URL`);
  const byName = new Map(catalog.columns.map((c) => [c.name, c]));
  for (const col of config.exclude) {
    if (!byName.has(col)) throw new ConfigError(`${name} has no column ${JSON.stringify(col)} to exclude (config file, tables["${name}"].exclude)`);
  }
  let flag = config.flagColumn;
  if (flag !== null) {
    const c = byName.get(flag);
    if (!c || c.typname !== 'bool' || c.element) {
      // The zero-config default only applies where the seed's column is there.
      if (config.schema === 'public' && config.table === 'user_login' && flag === 'sent_to_kafka' && !c) flag = null;
      else throw new ConfigError(`${name}.${flag} is ${c ? `of type ${c.type}` : 'not a column'}: the flag column (config file, tables["${name}"].flagColumn) must be a boolean column`);
    }
  }
  const key = config.key ?? catalog.primaryKey;
  if (key.length === 0) {
    throw new ConfigError(`${name} has no primary key: streamer needs one to replicate updates and deletes — add one, or name the key columns in the config file (tables["${name}"].key)`);
  }
  for (const k of key) {
    const c = byName.get(k);
    if (!c) throw new ConfigError(`${name} has no column ${JSON.stringify(k)} for its key (config file, tables["${name}"].key)`);
    if (config.exclude.includes(k)) throw new ConfigError(`${name}.${k} is a key column and cannot be excluded`);
    if (c.element) throw new ConfigError(`${name}.${k} is an array (${c.type}): a key column must be a scalar`);
    if (!c.notNull) throw new ConfigError(`${name}.${k} is a key column but may be NULL: declare it NOT NULL`);
  }
  const columns = catalog.columns.filter((c) => c.name !== flag && !config.exclude.includes(c.name));
  const anyCaps = capabilities({ major: 99, minor: 0 });
  const names = new Set(columns.map((c) => c.name));
  for (const c of columns) {
    if (RESERVED.has(c.name) || (c.name.endsWith(NULL_FLAG_SUFFIX) && names.has(c.name.slice(0, -NULL_FLAG_SUFFIX.length)))) {
      throw new ConfigError(`${name}.${c.name}: the name is reserved for streamer's own columns (${[...RESERVED].join(', ')}) — exclude it in the config file or rename it`);
    }
    const m = mapColumn(c, anyCaps);
    if (!m.ok) {
      throw new ConfigError(
        `${name}.${c.name} has type ${m.reason}, which streamer cannot carry exactly (it carries ${SUPPORTED_TYPES.join(', ')}) — exclude the column in the config file (tables["${name}"].exclude), or change its type`,
      );
    }
  }
  // The config's fields one by one, not spread: the producer's shape check passes the running
  // spec as the config, and a spread of it re-assigned its fields — V8 then marked them mutable
  // on the spec's hidden class, which deoptimized the drain's compiled code mid-drain (issue 14).
  return {
    schema: config.schema,
    table: config.table,
    topic: config.topic,
    dlqTopic: config.dlqTopic,
    clickhouseTable: config.clickhouseTable,
    exclude: config.exclude,
    key: config.key,
    flagColumn: flag,
    qualified: pgTable(config.schema, config.table),
    id: objectId(config.schema, config.table),
    capture: flag === null ? { kind: 'log' } : { kind: 'flag', column: flag },
    columns,
    keyColumns: key,
  };
}
