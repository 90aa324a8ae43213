/**
 * `streamer migrate`, whole, in this order: PostgreSQL's migrations and the tables' specs; the
 * ClickHouse side (tables made from the specs); each table's capture — so that a column added in
 * PostgreSQL exists in ClickHouse before the producer is told to send it; last, for a ClickHouse
 * table created anew while the PostgreSQL rows already count as sent, every such row queued again,
 * so that no replica starts half empty.
 */
import type { Config } from '../config/config.js';
import type { Logger } from '../common/logger.js';
import { migratePostgres, resendTables, type PostgresMigration } from '../capture/pg-migrate.js';
import { migrateClickHouse, type ClickHouseMigration } from '../sink/clickhouse-migrate.js';

export interface Migration {
  postgres: PostgresMigration;
  clickhouse: ClickHouseMigration;
}

export async function migrate(config: Config, logger: Logger, opts: { backfillChunk?: number; onProgress?: (table: string, queued: number) => void } = {}): Promise<Migration> {
  let clickhouse: ClickHouseMigration | undefined;
  const postgres = await migratePostgres(config, logger, {
    ...opts,
    beforeInstall: async (specs) => {
      clickhouse = await migrateClickHouse(config, logger, specs);
    },
  });
  const ch = clickhouse as ClickHouseMigration | undefined;
  if (!ch) throw new Error('bug: migratePostgres did not run the ClickHouse side');
  const resend = postgres.specs.filter((spec, i) => ch.tables[i]?.action === 'created' && postgres.tables[i]?.backfilled === 0);
  if (resend.length > 0) {
    const counts = await resendTables(config, logger, resend, opts);
    for (const [j, spec] of resend.entries()) {
      const i = postgres.specs.indexOf(spec);
      (postgres.tables[i] as PostgresMigration['tables'][number]).backfilled += counts[j] ?? 0;
    }
  }
  return { postgres, clickhouse: ch };
}
