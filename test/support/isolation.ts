/**
 * Per-test-file isolation on the real services: a PostgreSQL database, Kafka topic names and a
 * ClickHouse database, each with a random suffix, dropped after the file. Files can therefore run
 * in parallel and never touch anyone's data.
 */
import { randomBytes } from 'node:crypto';
import { createClient } from '@clickhouse/client';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { inject } from 'vitest';
import { loadConfig, type Config } from '../../src/config/config.js';

export const suffix = (): string => randomBytes(4).toString('hex');

export function services() {
  return inject('services');
}

export interface Isolated {
  config: Config;
  /** The environment that yields `config`, for spawning the real CLI. */
  env: Record<string, string>;
  cleanup: () => Promise<void>;
}

/** Fresh PostgreSQL database + ClickHouse database + topic names; `env` overrides the rest. */
export async function isolate(env: Record<string, string> = {}): Promise<Isolated> {
  const s = services();
  const id = suffix();
  const pgDb = `streamer_t_${id}`;
  const chDb = `streamer_t_${id}`;
  const admin = new pg.Client({ connectionString: s.databaseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${pgDb}`);
  await admin.end();
  const ch = createClient({ url: s.clickhouseUrl });
  await ch.command({ query: `CREATE DATABASE IF NOT EXISTS ${chDb}` });
  await ch.close();
  const url = new URL(s.databaseUrl);
  url.pathname = `/${pgDb}`;
  const fullEnv: Record<string, string> = {
    DATABASE_URL: url.toString(),
    KAFKA_BROKERS: s.kafkaBrokers,
    KAFKA_TOPIC: `user_event_${id}`,
    KAFKA_GROUP_ID: `streamer_t_${id}`,
    CLICKHOUSE_URL: s.clickhouseUrl,
    CLICKHOUSE_DATABASE: chDb,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    HTTP_PORT: '0',
    ...env,
  };
  const config = loadConfig(fullEnv);
  return {
    config,
    env: fullEnv,
    cleanup: async () => {
      const a = new pg.Client({ connectionString: s.databaseUrl });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${pgDb} WITH (FORCE)`);
      await a.end();
      const c = createClient({ url: s.clickhouseUrl });
      await c.command({ query: `DROP DATABASE IF EXISTS ${chDb}` });
      await c.close();
      const k = new Kafka({ brokers: s.kafkaBrokers.split(','), logLevel: logLevel.NOTHING }).admin();
      await k.connect();
      const topics = (await k.listTopics()).filter((t) => t.startsWith(config.kafkaTopic));
      if (topics.length > 0) await k.deleteTopics({ topics }).catch(() => {});
      await k.disconnect();
    },
  };
}
