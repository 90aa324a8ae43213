/** Test helpers around the library: a full migrate, and messages as the producer writes them. */
import type { Config } from '../../src/config/config.js';
import type { Logger } from '../../src/common/logger.js';
import { migrate } from '../../src/ops/migrate.js';
import type { ClickHouseMigration } from '../../src/sink/clickhouse-migrate.js';
import type { EncodedMessage, Op } from '../../src/tables/codec.js';

/** `streamer migrate` (src/ops/migrate.ts); returns the ClickHouse part, which most tests look at. */
export async function migrateAll(config: Config, logger: Logger): Promise<ClickHouseMigration> {
  return (await migrate(config, logger)).clickhouse;
}

export interface UserLoginRow {
  id: number;
  username: string | null;
  event_type: string | null;
  /** 'YYYY-MM-DD HH:MM:SS.ffffff' or null. */
  event_time: string | null;
}

/**
 * A message of user_login as the producer publishes it (README "The message contract"); the
 * version defaults to the id, so that every row of a test has its own.
 */
export function userLoginMessage(row: UserLoginRow, version = row.id, op: Op = 'upsert'): EncodedMessage {
  const body = op === 'delete' ? { id: row.id } : { id: row.id, username: row.username, event_type: row.event_type, event_time: row.event_time };
  return { key: String(row.id), value: Buffer.from(JSON.stringify({ ...body, _op: op, _version: version }), 'utf8') };
}

/** Rows from..to of user_login with names `u<id>`, as messages. */
export function userLoginRange(from: number, to: number, eventTime = '2024-05-06 07:08:09.000000'): EncodedMessage[] {
  return Array.from({ length: to - from + 1 }, (_, i) => userLoginMessage({ id: from + i, username: `u${from + i}`, event_type: 'login', event_time: eventTime }));
}
