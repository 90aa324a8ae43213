import pg from 'pg';
import type { Config } from '../../src/config.js';

/** Runs `fn` with a fresh connection to the test database, closed after. */
export async function withPg<T>(config: Config, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: config.databaseUrl });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function pgCount(config: Config, where = 'TRUE'): Promise<number> {
  return withPg(config, async (c) => Number((await c.query(`SELECT count(*)::int AS n FROM user_login WHERE ${where}`)).rows[0].n));
}

/** The seed's DDL, exactly as the seed README gives it (users adopt streamer on such a table). */
export const SEED_DDL = `CREATE TABLE IF NOT EXISTS user_login (
    id SERIAL PRIMARY KEY,
    username TEXT,
    event_type TEXT,
    event_time TIMESTAMP,
    sent_to_kafka BOOLEAN DEFAULT FALSE
)`;

export const SEED_ROWS: Array<[string, string, string]> = [
  ['john_doe', 'login', '2023-10-26 10:00:00'],
  ['jane_smith', 'register', '2023-10-26 10:15:00'],
  ['john_doe', 'purchase', '2023-10-26 10:30:00'],
  ['bob_builder', 'login', '2023-10-26 11:00:00'],
  ['alice_wonderland', 'register', '2023-10-26 11:15:00'],
  ['bob_builder', 'purchase', '2023-10-26 11:30:00'],
  ['john_doe', 'logout', '2023-10-26 12:00:00'],
  ['jane_smith', 'login', '2023-10-26 12:15:00'],
  // the seed's "fresher rows, not yet sent to Kafka"
  ['john_doe', 'login', '2024-11-15 14:00:00'],
  ['jane_smith', 'register', '2024-11-15 14:15:00'],
];

export async function insertSeedRows(config: Config): Promise<void> {
  await withPg(config, async (c) => {
    for (const [u, e, t] of SEED_ROWS) {
      await c.query('INSERT INTO user_login (username, event_type, event_time) VALUES ($1, $2, $3)', [u, e, t]);
    }
  });
}
