import type { TableReport, VerifyReport } from './verify.js';

const n = (v: number) => v.toLocaleString('en-US');
const keys = (list: string[], total: number) => (list.length === 0 ? '' : ` — e.g. ${list.join(', ')}${total > list.length ? ', …' : ''}`);

function table(t: TableReport): string[] {
  if (t.shapeChange) return [`  FAILED ${t.table} → ${t.clickhouseTable}`, `    ${t.shapeChange}`];
  const line = (label: string, kind: keyof TableReport['examples'], note = '') => `    ${label.padEnd(22)}${n(t[kind])}${keys(t.examples[kind], t[kind])}${note}`;
  return [
    `  ${t.ok ? 'OK    ' : 'FAILED'} ${t.table} → ${t.clickhouseTable}`,
    `    PostgreSQL rows       ${n(t.postgresRows)}`,
    `    ClickHouse rows       ${n(t.clickhouseRows)} live (newest version, not deleted); ${n(t.clickhouseStoredRows)} stored without FINAL`,
    line('missing', 'missing'),
    line('stale', 'stale', ' (other values than PostgreSQL: an older version)'),
    line('deleted but present', 'deletedButPresent'),
    line('duplicated versions', 'duplicated', ' (a key and version stored twice, not merged yet)'),
    line('not yet sent', 'notYetSent', ' (changes pending or failed in PostgreSQL: not a failure)'),
    line('dead-lettered', 'deadLettered', ' (refused by the consumer with a reason: see streamer_dead_letters; not a failure)'),
    `    compared by content hash in ${n(t.buckets)} ${t.buckets === 1 ? 'range' : 'ranges'} of keys; ${n(t.bucketsDiffering)} differed and ${t.bucketsDiffering === 1 ? 'was' : 'were'} compared key by key`,
  ];
}

/** verify's report for a terminal: a verdict line, then each table's figures. */
export function formatVerify(r: VerifyReport): string {
  return [
    r.ok ? 'OK: ClickHouse holds exactly what PostgreSQL holds, each version once.' : 'FAILED: ClickHouse differs from PostgreSQL.',
    ...r.tables.flatMap(table),
  ].join('\n');
}
