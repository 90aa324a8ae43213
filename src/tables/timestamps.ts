/**
 * Wall-clock timestamps as text, 'YYYY-MM-DD HH:MM:SS[.ffffff]' (years 0001–9999 AD, as
 * PostgreSQL prints them with DateStyle ISO; a 'T' is accepted too). Parsed on both sides of Kafka
 * for every timestamp value, so: no per-call arrays or Dates beyond the match.
 */
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;

export interface TimestampParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** Six digits, zero-padded ('000000' when absent). */
  micros: string;
}

// Days per month in a common year; February gets its 29th in leap years.
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Parses and checks a wall-clock timestamp; null when it is not a real date and time. */
export function parseTimestamp(text: string): TimestampParts | null {
  const m = TIMESTAMP.exec(text);
  if (!m) return null;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6]);
  if (year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  const daysInMonth = (DAYS_IN_MONTH[month - 1] as number) + (month === 2 && isLeap(year) ? 1 : 0);
  if (day > daysInMonth) return null;
  const f = m[7];
  return { year, month, day, hour, minute, second, micros: f === undefined ? '000000' : f.length === 6 ? f : f.padEnd(6, '0') };
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}
