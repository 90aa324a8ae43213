/** Table specs for unit tests, built by the real buildSpec from a hand-written catalog. */
import { buildSpec } from '../../../src/tables/introspect.js';
import type { PgColumn } from '../../../src/tables/pg-types.js';
import { defaultTopic, type TableConfig, type TableSpec } from '../../../src/tables/spec.js';

export interface ColumnOptions {
  notNull?: boolean;
  /** format_type text; default the typname. */
  type?: string;
  typtype?: string;
  typmod?: number;
  /** An array of `element` (typname). */
  element?: string;
}

export type ColumnDef = [name: string, typname: string, options?: ColumnOptions];

export function column([name, typname, o = {}]: ColumnDef): PgColumn {
  return {
    name,
    type: o.type ?? (o.element ? `${o.element}[]` : typname),
    typname: o.element ? `_${o.element}` : typname,
    typtype: o.typtype ?? 'b',
    element: o.element ? { typname: o.element, typtype: o.typtype ?? 'b' } : null,
    typmod: o.typmod ?? -1,
    notNull: o.notNull ?? false,
  };
}

/** numeric(p,s)'s atttypmod. */
export const numericTypmod = (precision: number, scale: number) => ((precision << 16) | (scale & 0x7ff)) + 4;

/** A spec of `schema.table` with `columns`; the primary key is the first column unless `key` says. */
export function spec(schema: string, table: string, columns: ColumnDef[], config: Partial<TableConfig> & { primaryKey?: string[] } = {}): TableSpec {
  const topic = config.topic ?? defaultTopic(schema, table);
  const { primaryKey, ...rest } = config;
  return buildSpec(
    { schema, table, topic, dlqTopic: `${topic}.dlq`, clickhouseTable: table, exclude: [], key: null, flagColumn: null, ...rest },
    { columns: columns.map(column), primaryKey: primaryKey ?? (config.key ? [] : [columns[0]![0]]) },
  );
}
