import { defineConfig } from 'vitest/config';

// Two kinds of test files:
//  - test/unit, test/integration: isolated per file (own database / topics), run two at a time;
//  - test/disruptive: stop and restart a shared server (Kafka, ClickHouse, PostgreSQL), so they
//    run one file at a time, after the others (`npm test` runs both configs in turn).
export const shared = {
  // Brings up (or finds) PostgreSQL, Kafka and ClickHouse once for the whole run.
  globalSetup: ['test/support/global-setup.ts'],
  // Real services: Kafka group joins and server restarts take seconds, not milliseconds.
  testTimeout: 120_000,
  hookTimeout: 180_000,
  pool: 'forks' as const,
};

export default defineConfig({
  test: {
    ...shared,
    include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/clickhouse-current/**/*.test.ts'],
    // Two files at a time fits the 2-core machine without starving the three servers.
    maxWorkers: 2,
  },
});
