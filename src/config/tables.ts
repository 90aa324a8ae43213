/**
 * Which tables are replicated, and how: STREAMER_TABLES (a comma-separated list of
 * `[schema.]table`, default `public.user_login`) and, optionally, the file named by
 * STREAMER_CONFIG (JSON) with per-table overrides:
 *
 *   { "tables": {
 *       "public.orders": { "topic": "shop.orders", "clickhouseTable": "orders_replica",
 *                          "exclude": ["card_number"], "key": ["id"], "flagColumn": null } } }
 *
 * Names follow SQL: an unquoted name is folded to lower case, a double-quoted one is taken as
 * written ("Order Items", "a,b"). Validated like the environment: one line naming the key, the
 * value and what is allowed.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../common/errors.js';
import { defaultTopic, type TableConfig } from '../tables/spec.js';

export const DEFAULT_TABLES = 'public.user_login';
const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;

/** Splits `a, "b,c".d` on commas outside double quotes. */
function splitOutsideQuotes(text: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch === '"') {
      if (quoted && text[i + 1] === '"') {
        cur += '""';
        i++;
        continue;
      }
      quoted = !quoted;
    }
    if (ch === sep && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (quoted) throw new Error('an unclosed double quote');
  out.push(cur);
  return out;
}

function identifier(part: string): string {
  const p = part.trim();
  if (p.startsWith('"')) {
    if (!p.endsWith('"') || p.length < 3) throw new Error(`bad quoted name ${p}`);
    return p.slice(1, -1).replace(/""/g, '"');
  }
  if (!/^[A-Za-z_][A-Za-z0-9_$]*$/.test(p)) throw new Error(`${JSON.stringify(p)} is not a name (quote it: "${p}")`);
  return p.toLowerCase();
}

/** `[schema.]table` → [schema, table]; schema defaults to public. */
export function parseTableName(text: string): { schema: string; table: string } {
  const parts = splitOutsideQuotes(text.trim(), '.');
  if (parts.length === 1) return { schema: 'public', table: identifier(parts[0] as string) };
  if (parts.length === 2) return { schema: identifier(parts[0] as string), table: identifier(parts[1] as string) };
  throw new Error(`${JSON.stringify(text)} is not [schema.]table`);
}

export const tableKey = (t: { schema: string; table: string }) => `${t.schema}.${t.table}`;

interface FileEntry {
  topic?: string;
  dlqTopic?: string;
  clickhouseTable?: string;
  exclude?: string[];
  key?: string[];
  flagColumn?: string | null;
}

const ENTRY_KEYS = ['topic', 'dlqTopic', 'clickhouseTable', 'exclude', 'key', 'flagColumn'];

/** Reads and checks the config file; every error names the file and the key. */
export function readTablesFile(path: string, text?: string): Map<string, FileEntry> {
  let raw: unknown;
  try {
    raw = JSON.parse(text ?? readFileSync(path, 'utf8'));
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : (err as Error).message;
    throw new ConfigError(`STREAMER_CONFIG=${JSON.stringify(path)} cannot be read: ${why}`);
  }
  const at = (key: string) => `${path}: ${key}`;
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${path}: expected a JSON object with "tables"`);
  for (const k of Object.keys(raw)) if (k !== 'tables') throw new ConfigError(`${at(k)} is not a setting: expected only "tables"`);
  const tables = (raw as { tables?: unknown }).tables ?? {};
  if (!tables || typeof tables !== 'object' || Array.isArray(tables)) throw new ConfigError(`${at('tables')} must be an object of "schema.table": { … }`);
  const out = new Map<string, FileEntry>();
  for (const [name, entry] of Object.entries(tables)) {
    let key: string;
    try {
      key = tableKey(parseTableName(name));
    } catch (err) {
      throw new ConfigError(`${at(`tables["${name}"]`)}: ${(err as Error).message}`);
    }
    const where = (k: string) => at(`tables["${name}"].${k}`);
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) throw new ConfigError(`${at(`tables["${name}"]`)} must be an object`);
    const e = entry as Record<string, unknown>;
    for (const k of Object.keys(e)) if (!ENTRY_KEYS.includes(k)) throw new ConfigError(`${where(k)} is not a setting: expected ${ENTRY_KEYS.join(', ')}`);
    for (const k of ['topic', 'dlqTopic']) {
      if (e[k] !== undefined && (typeof e[k] !== 'string' || !TOPIC.test(e[k] as string))) {
        throw new ConfigError(`${where(k)}=${JSON.stringify(e[k])} is not a valid Kafka topic name: letters, digits, '.', '_' and '-' only`);
      }
    }
    if (e.clickhouseTable !== undefined && (typeof e.clickhouseTable !== 'string' || e.clickhouseTable.length === 0)) throw new ConfigError(`${where('clickhouseTable')} must be a non-empty string`);
    for (const k of ['exclude', 'key']) {
      if (e[k] !== undefined && (!Array.isArray(e[k]) || (e[k] as unknown[]).some((x) => typeof x !== 'string' || x.length === 0))) {
        throw new ConfigError(`${where(k)} must be a list of column names (exact, as in the catalog)`);
      }
    }
    if (e.key !== undefined && (e.key as string[]).length === 0) throw new ConfigError(`${where('key')} must name at least one column`);
    if (e.flagColumn !== undefined && e.flagColumn !== null && (typeof e.flagColumn !== 'string' || e.flagColumn.length === 0)) throw new ConfigError(`${where('flagColumn')} must be a column name or null`);
    out.set(key, e as FileEntry);
  }
  return out;
}

/**
 * The table configs: STREAMER_TABLES, with the file's overrides and the KAFKA_TOPIC /
 * KAFKA_DLQ_TOPIC of a single table. `env` holds the raw values.
 */
export function tableConfigs(env: { STREAMER_TABLES?: string; STREAMER_CONFIG?: string; KAFKA_TOPIC?: string; KAFKA_DLQ_TOPIC?: string }, file?: Map<string, FileEntry>): TableConfig[] {
  const raw = env.STREAMER_TABLES?.trim() ? env.STREAMER_TABLES : DEFAULT_TABLES;
  let names: Array<{ schema: string; table: string }>;
  try {
    names = splitOutsideQuotes(raw, ',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map(parseTableName);
  } catch (err) {
    throw new ConfigError(`STREAMER_TABLES=${JSON.stringify(raw)} is not valid: ${(err as Error).message} — expected [schema.]table[, …], e.g. public.orders,"Sales"."Order Items"`);
  }
  if (names.length === 0) throw new ConfigError(`STREAMER_TABLES=${JSON.stringify(raw)} names no table`);
  const entries = file ?? (env.STREAMER_CONFIG?.trim() ? readTablesFile(env.STREAMER_CONFIG.trim()) : new Map<string, FileEntry>());
  const keys = new Set(names.map(tableKey));
  if (keys.size !== names.length) throw new ConfigError(`STREAMER_TABLES=${JSON.stringify(raw)} names a table twice`);
  for (const k of entries.keys()) {
    if (!keys.has(k)) throw new ConfigError(`${env.STREAMER_CONFIG}: tables["${k}"] is not in STREAMER_TABLES=${JSON.stringify(raw)} — add it there, or remove its entry`);
  }
  const single = names.length === 1;
  for (const k of ['KAFKA_TOPIC', 'KAFKA_DLQ_TOPIC'] as const) {
    const v = env[k]?.trim();
    if (v && !single) throw new ConfigError(`${k}=${JSON.stringify(v)} names one topic, but STREAMER_TABLES has ${names.length} tables — set each table's topic in the config file (STREAMER_CONFIG)`);
    if (v && !TOPIC.test(v)) throw new ConfigError(`${k}=${JSON.stringify(v)} is not a valid Kafka topic name: letters, digits, '.', '_' and '-' only`);
  }
  const configs = names.map((n): TableConfig => {
    const e = entries.get(tableKey(n)) ?? {};
    const topic = (single ? env.KAFKA_TOPIC?.trim() : undefined) || e.topic || defaultTopic(n.schema, n.table);
    const isSeed = n.schema === 'public' && n.table === 'user_login';
    return {
      schema: n.schema,
      table: n.table,
      topic,
      dlqTopic: (single ? env.KAFKA_DLQ_TOPIC?.trim() : undefined) || e.dlqTopic || `${topic}.dlq`,
      clickhouseTable: e.clickhouseTable ?? n.table,
      exclude: e.exclude ?? [],
      key: e.key ?? null,
      flagColumn: e.flagColumn === undefined ? (isSeed ? 'sent_to_kafka' : null) : e.flagColumn,
    };
  });
  const seen = new Map<string, string>();
  for (const c of configs) {
    for (const [what, value] of [
      ['ClickHouse table', `ch:${c.clickhouseTable}`],
      ['topic', `topic:${c.topic}`],
      ['topic', `topic:${c.dlqTopic}`],
    ] as const) {
      const other = seen.get(value);
      if (other && other !== tableKey(c)) throw new ConfigError(`${tableKey(c)} and ${other} would share the ${what} ${value.slice(value.indexOf(':') + 1)} — set another for one of them in the config file (STREAMER_CONFIG)`);
      seen.set(value, tableKey(c));
    }
  }
  return configs;
}
