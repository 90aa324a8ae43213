import type { VerifyReport } from './verify.js';

const n = (v: number) => v.toLocaleString('en-US');
const ids = (list: number[], total: number) => (list.length === 0 ? '' : ` — e.g. ${list.join(', ')}${total > list.length ? ', …' : ''}`);

/** verify's report for a terminal: a verdict line, then one line per kind of difference. */
export function formatVerify(r: VerifyReport): string {
  const lines = [
    r.ok ? 'OK: ClickHouse holds every row PostgreSQL marked sent, each once.' : 'FAILED: ClickHouse differs from PostgreSQL.',
    `  PostgreSQL rows      ${n(r.postgresRows)} (${n(r.pending)} pending, ${n(r.failed)} failed)`,
    `  ClickHouse rows      ${n(r.clickhouseRows)} (count() without FINAL, duplicates included)`,
    `  missing              ${n(r.missing)}${ids(r.missingExamples, r.missing)}`,
    `  duplicated           ${n(r.duplicated)}${ids(r.duplicatedExamples, r.duplicated)}`,
    `  dead-lettered        ${n(r.deadLettered)}${ids(r.deadLetteredExamples, r.deadLettered)} (refused by the consumer with a reason: see streamer_dead_letters; not a failure)`,
    `  not yet sent         ${n(r.notYetSent)}${ids(r.notYetSentExamples, r.notYetSent)} (pending or failed in PostgreSQL: not a failure)`,
    `  extra in ClickHouse  ${n(r.extra)}${ids(r.extraExamples, r.extra)} (gone from PostgreSQL: not a failure)`,
    `  ${n(r.rangesChecked)} ranges of ${n(r.rangeSize)} ids compared, ${n(r.rangesDiffering)} id by id`,
  ];
  return lines.join('\n');
}
