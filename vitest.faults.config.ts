import { defineConfig } from 'vitest/config';
import { shared } from './vitest.config.js';

// `npm run test:faults`: the real CLI processes killed with SIGKILL and the servers stopped under a
// continuous insert load (test/faults). It stops and restarts the native stack's servers, so one
// file at a time, never beside the other suites. Sizes: FAULTS_* variables (test/faults/support.ts).
export default defineConfig({
  test: {
    ...shared,
    include: ['test/faults/**/*.test.ts'],
    fileParallelism: false,
    // The scenarios print their summary table; keep it readable (one line per test, not dots).
    reporters: ['default'],
  },
});
