import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';

export interface ServiceAddresses {
  databaseUrl: string;
  kafkaBrokers: string;
  clickhouseUrl: string;
}

/** A real request to each service; returns a description of each one that does not answer. */
export async function probeAll(a: ServiceAddresses): Promise<string[]> {
  const results = await Promise.all([
    probe('PostgreSQL', async () => {
      const c = new pg.Client({ connectionString: a.databaseUrl, connectionTimeoutMillis: 2000 });
      try {
        await c.connect();
        await c.query('SELECT 1');
      } finally {
        await c.end().catch(() => {});
      }
    }),
    probe('Kafka', async () => {
      const admin = new Kafka({
        brokers: a.kafkaBrokers.split(','),
        logLevel: logLevel.NOTHING,
        connectionTimeout: 2000,
        retry: { retries: 0 },
      }).admin();
      try {
        await admin.connect();
        await admin.describeCluster();
      } finally {
        await admin.disconnect().catch(() => {});
      }
    }),
    probe('ClickHouse', async () => {
      // The client would print every refused connection to the console: a probe expects them.
      const ch = createClient({ url: a.clickhouseUrl, request_timeout: 2000, log: { level: ClickHouseLogLevel.OFF } });
      try {
        const r = await ch.query({ query: 'SELECT 1 AS one', format: 'JSONEachRow' });
        await r.json();
      } finally {
        await ch.close();
      }
    }),
  ]);
  return results.filter((r): r is string => r !== null);
}

async function probe(name: string, fn: () => Promise<void>): Promise<string | null> {
  try {
    await fn();
    return null;
  } catch (err) {
    return `${name} (${(err as Error).message})`;
  }
}
