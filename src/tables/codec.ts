/**
 * The message contract, defined once for both sides of Kafka (README "The message contract").
 *
 * key:   the row's key as text — the value itself for a one-column key (`42`, `a@b.c`), a JSON
 *        array of the values' text for several (`["7", "2024-01-01"]`) — so that every version of
 *        a row lands on one partition. A truncate marker has no key.
 * value: UTF-8 JSON, one object:
 *        upsert:   every replicated column (src/tables/pg-types.ts says how each type is written),
 *                  then "_op":"upsert" and "_version":N;
 *        delete:   the key columns only, "_op":"delete", "_version":N;
 *        truncate: "_op":"truncate", "_version":N — sent to every partition of the topic.
 * A version increases per row in commit order (src/capture/plans.ts); consumers keep the highest.
 * Messages of f141f4e (no "_op", no "_version") read as upserts of version 0.
 */
export type Op = 'upsert' | 'delete' | 'truncate';

export interface EncodedMessage {
  /** null for a truncate marker. */
  key: string | null;
  value: Buffer;
  /** Set for a truncate marker: it goes to this partition (one copy per partition). */
  partition?: number;
  /** Kafka's time of the message, ms since the epoch as text (unset: when it is sent). */
  timestamp?: string;
}

/** Each name as the start of a JSON member, `"name":` — made once per table, used for every row. */
export function fieldPrefixes(names: readonly string[]): string[] {
  return names.map((n) => `${JSON.stringify(n)}:`);
}

/** `{"a":1,"b":"x","_op":"upsert","_version":7}` from fieldPrefixes() of the columns and their encoded JSON. */
export function encodeFields(prefixes: readonly string[], fragments: readonly string[], op: Op, version: string): Buffer {
  let json = '{';
  for (let i = 0; i < prefixes.length; i++) json += `${prefixes[i]}${fragments[i]},`;
  json += `"_op":"${op}","_version":${version}}`;
  return Buffer.from(json, 'utf8');
}

/** encodeFields() from column names. */
export function encodeValue(names: readonly string[], fragments: readonly string[], op: Op, version: string): Buffer {
  return encodeFields(fieldPrefixes(names), fragments, op, version);
}

export function encodeTruncate(version: string): Buffer {
  return Buffer.from(`{"_op":"truncate","_version":${version}}`, 'utf8');
}

export interface DecodedMessage {
  op: Op;
  /** The version; 0 for messages of f141f4e. */
  version: number;
  /** Every field but _op and _version. */
  fields: Record<string, unknown>;
}

export type DecodeResult = { ok: true; message: DecodedMessage } | { ok: false; reason: string };

/** Decodes one message value. Never throws: a bad message gets a reason (and is dead-lettered). */
export function decodeMessage(value: Buffer | null): DecodeResult {
  if (value === null || value.length === 0) return { ok: false, reason: 'empty message value' };
  return decodeMessageText(value.toString('utf8'));
}

/** decodeMessage() of a value already read as UTF-8 text (not empty). */
export function decodeMessageText(text: string): DecodeResult {
  if (text.length === 0) return { ok: false, reason: 'empty message value' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `not JSON: ${(err as Error).message}` };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { ok: false, reason: 'not a JSON object' };
  const fields = parsed as Record<string, unknown>;
  const op = fields._op ?? 'upsert';
  if (op !== 'upsert' && op !== 'delete' && op !== 'truncate') return { ok: false, reason: `_op must be upsert, delete or truncate, got ${JSON.stringify(op)}` };
  const version = fields._version ?? 0;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) {
    return { ok: false, reason: `_version must be a non-negative integer, got ${JSON.stringify(version)}` };
  }
  // The last members first: V8 keeps an object in its fast shape when the property deleted is the
  // last one added, as _version and then _op are in every message of ours (else field lookups of
  // every column slow down: ~1 µs a row, measured in the drain profile).
  delete fields._version;
  delete fields._op;
  return { ok: true, message: { op, version, fields } };
}
