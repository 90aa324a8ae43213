/**
 * The table specification: everything about one replicated table that the SQL on both sides, the
 * message codec and the sink are generated from. `TableConfig` is what the user configured
 * (STREAMER_TABLES and the config file, src/config/tables-file.ts); `TableSpec` adds what the
 * PostgreSQL catalog says (src/tables/introspect.ts). No module holds per-table code: user_login
 * is one spec among others, and its one special case — the seed's `sent_to_kafka` flag — is a
 * capture mode any table may use.
 */
import { objectId, pgTable } from './identifiers.js';
import type { PgColumn } from './pg-types.js';

/** How changes are found in PostgreSQL (sql: src/capture/plans.ts). */
export type CaptureMode =
  /**
   * A boolean column of the table says "this row's current version is in Kafka" (the seed's
   * `sent_to_kafka`): inserts cost nothing extra, an update that changes a replicated column sets
   * it back to FALSE, the producer claims rows where it is not TRUE. Deletes (and TRUNCATE) go to
   * the change log, since they leave no row to flag.
   */
  | { kind: 'flag'; column: string }
  /** Row triggers write the key and a version of every insert, update and delete to the change log. */
  | { kind: 'log' };

export interface TableConfig {
  schema: string;
  table: string;
  /** The Kafka topic. Default: user_event for public.user_login, else `<schema>.<table>`. */
  topic: string;
  /** The dead-letter topic. Default `<topic>.dlq`. */
  dlqTopic: string;
  /** The ClickHouse table in CLICKHOUSE_DATABASE. Default: the PostgreSQL table's name. */
  clickhouseTable: string;
  /** Columns not replicated. */
  exclude: string[];
  /** The key, when the table has no primary key (refused otherwise). */
  key: string[] | null;
  /** The flag column, for the flag capture mode; null: log mode. Default sent_to_kafka for public.user_login. */
  flagColumn: string | null;
}

export interface TableSpec extends TableConfig {
  /** `"schema"."table"`, quoted. */
  qualified: string;
  /** [a-z0-9_] name for the objects we create per table (identifiers.ts objectId). */
  id: string;
  capture: CaptureMode;
  /** Replicated columns in catalog order (excluded columns and the flag left out). */
  columns: PgColumn[];
  /** The key columns' names, in key order. */
  keyColumns: string[];
}

/** Names of the PostgreSQL objects streamer creates for a table. */
export function captureObjects(spec: Pick<TableSpec, 'schema' | 'id'>) {
  const id = spec.id;
  return {
    /** The change log, in the table's schema. */
    changes: pgTable(spec.schema, `streamer_${id}_changes`),
    changesName: `streamer_${id}_changes`,
    pendingIndex: `${id}_pending_idx`,
    insertedTrigger: `streamer_${id}_inserted`,
    /** Replaced by updatedTrigger (kept to drop it where an earlier install made it). */
    resetTrigger: `streamer_${id}_reset`,
    updatedTrigger: `streamer_${id}_updated`,
    changedTrigger: `streamer_${id}_changed`,
    deletedTrigger: `streamer_${id}_deleted`,
    truncatedTrigger: `streamer_${id}_truncated`,
    logTrigger: `streamer_${id}_logged`,
    fn: (what: string) => `streamer_${id}_${what}`,
  };
}

/** The default topic of a table: the seed's `user_event` for public.user_login, else `<schema>.<table>`. */
export function defaultTopic(schema: string, table: string): string {
  if (schema === 'public' && table === 'user_login') return 'user_event';
  const plain = `${schema}.${table}`;
  const safe = plain.replace(/[^A-Za-z0-9._-]+/g, '_');
  return safe === plain ? safe : `${safe}_${objectId(schema, table).slice(-8)}`;
}

export { objectId };

/** Columns every ClickHouse table of ours has besides the replicated ones. */
export const META_COLUMNS = ['_version', '_deleted', '_kafka_partition', '_kafka_offset', '_ingested_at'] as const;
/** Fields every message has besides the columns. */
export const MESSAGE_FIELDS = ['_op', '_version'] as const;
