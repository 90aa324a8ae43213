import { defineConfig } from 'vitest/config';
import { shared } from './vitest.config.js';

// `npm run test:clickhouse-current`: the ClickHouse side on the embedded current engine (npm chdb,
// ClickHouse 26.x) against the real PostgreSQL (the global setup finds or starts it). Also part of
// `npm test` (vitest.config.ts includes it).
export default defineConfig({
  test: {
    ...shared,
    include: ['test/clickhouse-current/**/*.test.ts'],
  },
});
