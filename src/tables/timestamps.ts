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

/** The digit at `i`, or -1 (also past the end). */
function digit(text: string, i: number): number {
  const c = text.charCodeAt(i) - 48;
  return c >= 0 && c <= 9 ? c : -1;
}

/** Digits `i`…`i + n - 1` as a number, or -1 if any is not a digit. */
function digits(text: string, i: number, n: number): number {
  let v = 0;
  for (let k = 0; k < n; k++) {
    const d = digit(text, i + k);
    if (d < 0) return -1;
    v = v * 10 + d;
  }
  return v;
}

/**
 * Parses and checks a wall-clock timestamp; null when it is not a real date and time. What
 * TIMESTAMP matches, read character by character (no match array, no Number() per part: the
 * consumer calls this for every timestamp value; issue 14). TIMESTAMP itself stays the definition
 * the unit test holds this to.
 */
export function parseTimestamp(text: string): TimestampParts | null {
  const n = text.length;
  if (n !== 19 && (n < 21 || n > 26)) return null;
  const year = digits(text, 0, 4);
  const month = digits(text, 5, 2);
  const day = digits(text, 8, 2);
  const hour = digits(text, 11, 2);
  const minute = digits(text, 14, 2);
  const second = digits(text, 17, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return null;
  const sep = text.charCodeAt(10);
  if (text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45 || (sep !== 32 && sep !== 84) || text.charCodeAt(13) !== 58 || text.charCodeAt(16) !== 58) return null;
  let micros = '000000';
  if (n > 19) {
    if (text.charCodeAt(19) !== 46 || digits(text, 20, n - 20) < 0) return null;
    const f = text.slice(20);
    micros = f.length === 6 ? f : f.padEnd(6, '0');
  }
  if (!isRealDateTime(year, month, day, hour, minute, second)) return null;
  return { year, month, day, hour, minute, second, micros };
}

/** TIMESTAMP's reading of a timestamp, the definition parseTimestamp() keeps to (for the unit test). */
export function parseTimestampByPattern(text: string): TimestampParts | null {
  const m = TIMESTAMP.exec(text);
  if (!m) return null;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6]);
  if (!isRealDateTime(year, month, day, hour, minute, second)) return null;
  const f = m[7];
  return { year, month, day, hour, minute, second, micros: f === undefined ? '000000' : f.length === 6 ? f : f.padEnd(6, '0') };
}

/** Whether the parts (read as digits: never negative) name a real date and time of years 1–9999. */
export function isRealDateTime(year: number, month: number, day: number, hour: number, minute: number, second: number): boolean {
  if (year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return false;
  return day <= (DAYS_IN_MONTH[month - 1] as number) + (month === 2 && isLeap(year) ? 1 : 0);
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}
