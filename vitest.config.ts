import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Brings up (or finds) PostgreSQL, Kafka and ClickHouse once for the whole run.
    globalSetup: ['test/support/global-setup.ts'],
    // Real services: Kafka group joins and ClickHouse restarts take seconds, not milliseconds.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Files are isolated by database / topic names, so they may run side by side; two at a time
    // fits the 2-core machine without starving the three servers.
    maxWorkers: 2,
    pool: 'forks',
  },
});
