/**
 * `streamer migrate`, whole: PostgreSQL first (its specs make the ClickHouse tables), then
 * ClickHouse, then — for a ClickHouse table created anew while the PostgreSQL rows already count as
 * sent — every such row queued again, so that no table starts its replica half empty.
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
  const postgres = await migratePostgres(config, logger, opts);
  const clickhouse = await migrateClickHouse(config, logger, postgres.specs);
  const resend = postgres.specs.filter((spec, i) => clickhouse.tables[i]?.action === 'created' && postgres.tables[i]?.backfilled === 0);
  if (resend.length > 0) {
    const counts = await resendTables(config, logger, resend, opts);
    for (const [j, spec] of resend.entries()) {
      const i = postgres.specs.indexOf(spec);
      (postgres.tables[i] as PostgresMigration['tables'][number]).backfilled += counts[j] ?? 0;
    }
  }
  return { postgres, clickhouse };
}
