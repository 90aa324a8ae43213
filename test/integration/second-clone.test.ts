// Issue 15 — "npm test finds the services or brings the local stack up itself": a second clone's
// test run against services another checkout started (here: this checkout's stack) must pass.
// On f141f4e the least-privilege test failed there: it could add its ClickHouse 18.16 user only
// through the users.d folder of the stack of its own checkout. The second clone here is a copy of
// this checkout's files without its .stack/ (node_modules linked, dist/ copied), running the
// least-privilege test with vitest, as `npm test` would, while the services answer.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';
import { services } from '../support/isolation.js';

const clone = mkdtempSync(path.join(os.tmpdir(), 'streamer-second-clone-'));
afterAll(() => rmSync(clone, { recursive: true, force: true }));

describe('a second clone, against services it did not start (issue 15)', () => {
  it('runs the least-privilege test green', async () => {
    const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' }).split('\n')
      .filter((f) => f && existsSync(path.join(ROOT, f))); // (a file deleted but not yet committed is listed too)
    for (const f of files) {
      mkdirSync(path.dirname(path.join(clone, f)), { recursive: true });
      cpSync(path.join(ROOT, f), path.join(clone, f));
    }
    cpSync(path.join(ROOT, 'dist'), path.join(clone, 'dist'), { recursive: true });
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(clone, 'node_modules'));
    const s = services();
    // Only what a user has: the three addresses (they answer), no STACK_DIR, no vitest state.
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', CI: 'true', DATABASE_URL: s.databaseUrl, KAFKA_BROKERS: s.kafkaBrokers, CLICKHOUSE_URL: s.clickhouseUrl };
    const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const child = spawn(process.execPath, [path.join(clone, 'node_modules/vitest/vitest.mjs'), 'run', 'test/integration/least-privilege.test.ts'], { cwd: clone, env });
      let text = '';
      child.stdout.on('data', (d) => (text += d));
      child.stderr.on('data', (d) => (text += d));
      child.on('exit', (code) => resolve({ code, text }));
    });
    const text = out.text.replace(/\x1b\[[0-9;]*m/g, ''); // vitest's colours
    expect(text).not.toMatch(/is not here to add one|offers no way to add one/);
    expect(text).toMatch(/Tests\s+3 passed \(3\)/);
    expect(out.code, out.text.slice(-3000)).toBe(0);
  }, 180_000);
});
