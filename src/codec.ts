/**
 * The message contract, defined once for both sides of Kafka.
 *
 * key:   the row id, as decimal text ("42")
 * value: UTF-8 JSON of the row's columns except `sent_to_kafka`:
 *        {"id":42,"username":"john_doe","event_type":"login","event_time":"2023-10-26 10:00:00.000000"}
 *
 * `event_time` is PostgreSQL's TIMESTAMP (without time zone) as its wall-clock digits, always with
 * six fractional digits, formatted by PostgreSQL itself (see CLAIM_BATCH) so that neither the
 * process's time zone nor node-postgres's Date conversion (which drops microseconds) touches it.
 * NULL columns are JSON null. Text is carried as JSON strings, so any Unicode round-trips exactly.
 */

export interface UserLoginEvent {
  id: number;
  username: string | null;
  event_type: string | null;
  /** 'YYYY-MM-DD HH:MM:SS[.ffffff]' wall-clock digits, or null. */
  event_time: string | null;
}

export interface EncodedMessage {
  key: string;
  value: Buffer;
}

/** A row as the claim query returns it. */
export interface PendingRow {
  id: number | string;
  username: string | null;
  event_type: string | null;
  event_time: string | null;
}

export function encodeRow(row: PendingRow): EncodedMessage {
  const id = typeof row.id === 'string' ? Number(row.id) : row.id;
  if (!Number.isSafeInteger(id)) throw new Error(`row id ${String(row.id)} is not a safe integer`);
  const event: UserLoginEvent = {
    id,
    username: row.username,
    event_type: row.event_type,
    event_time: row.event_time,
  };
  return { key: String(id), value: Buffer.from(JSON.stringify(event), 'utf8') };
}

export type DecodeResult = { ok: true; event: UserLoginEvent } | { ok: false; reason: string };

// Years 0001–9999 AD, as PostgreSQL prints them with DateStyle ISO; a 'T' is accepted too.
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
  // Runs for every row on both sides of Kafka: no per-call arrays or Dates beyond the match.
  const m = TIMESTAMP.exec(text);
  if (!m) return null;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6]);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  const daysInMonth = (DAYS_IN_MONTH[month - 1] as number) + (month === 2 && isLeap(year) ? 1 : 0);
  if (day > daysInMonth) return null;
  const f = m[7];
  return { year, month, day, hour, minute, second, micros: f === undefined ? '000000' : f.length === 6 ? f : f.padEnd(6, '0') };
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

const KEYS = ['id', 'username', 'event_type', 'event_time'] as const;

/** Decodes and validates one message value. Never throws: a bad message gets a reason. */
export function decodeMessage(value: Buffer | null): DecodeResult {
  if (value === null || value.length === 0) return { ok: false, reason: 'empty message value' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: `not JSON: ${(err as Error).message}` };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { ok: false, reason: 'not a JSON object' };
  }
  const obj = parsed as Record<string, unknown>;
  if (!('id' in obj) || obj.id === null) return { ok: false, reason: 'missing id' };
  if (typeof obj.id !== 'number' || !Number.isSafeInteger(obj.id) || obj.id < 0) {
    return { ok: false, reason: `id must be a non-negative integer, got ${JSON.stringify(obj.id)}` };
  }
  for (const key of KEYS.slice(1)) {
    if (!(key in obj)) return { ok: false, reason: `missing ${key}` };
    const v = obj[key];
    if (v !== null && typeof v !== 'string') return { ok: false, reason: `${key} must be a string or null, got ${JSON.stringify(v)}` };
  }
  const eventTime = obj.event_time as string | null;
  if (eventTime !== null && parseTimestamp(eventTime) === null) {
    return { ok: false, reason: `event_time is not a timestamp 'YYYY-MM-DD HH:MM:SS[.ffffff]': ${JSON.stringify(eventTime).slice(0, 100)}` };
  }
  return {
    ok: true,
    event: { id: obj.id, username: obj.username as string | null, event_type: obj.event_type as string | null, event_time: eventTime },
  };
}
