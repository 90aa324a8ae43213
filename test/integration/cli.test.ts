// The CLI's surface through the real binary: help, strict flags, one-line errors, no secrets.
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';

const COMMANDS = ['migrate', 'producer', 'consumer', 'run', 'status', 'verify'];

describe('streamer CLI', () => {
  it('--help lists every command and exits 0', async () => {
    const r = await runCli(['--help'], {});
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
  });

  it.each(COMMANDS)('%s --help prints its usage and exits 0 without touching any service', async (command) => {
    // An unreachable address proves --help never connects.
    const r = await runCli([command, '--help'], { DATABASE_URL: 'postgres://u:p@127.0.0.1:1/x', KAFKA_BROKERS: '127.0.0.1:1', CLICKHOUSE_URL: 'http://127.0.0.1:1' });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: streamer ${command}\\b`));
    expect(r.stderr).toBe('');
  });

  it.each([
    [['consumer', '--sweep'], /^streamer: Unknown option '--sweep'.* — run "streamer consumer --help"\n$/],
    [['status', 'extra'], /^streamer: Unexpected argument 'extra'.* — run "streamer status --help"\n$/],
    [['verify', '--range-size', '0'], /^streamer: --range-size="0" is not valid: expected a whole number of at least 1\n$/],
    [['frobnicate'], /^streamer: unknown command "frobnicate" — run "streamer --help" for the list\n$/],
  ])('%j is a usage error: one line, exit 2', async (args, message) => {
    const r = await runCli(args, {});
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
  });

  it.each([
    [{ DATABASE_URL: 'postgres//missing-colon' }, /^streamer: DATABASE_URL="postgres\/\/missing-colon" is not a valid URL: expected e\.g\. postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:5432\/postgres\n$/],
    [{ KAFKA_BROKERS: '127.0.0.1' }, /^streamer: KAFKA_BROKERS="127\.0\.0\.1" is not valid: expected host:port/],
    [{ CONSUMER_FLUSH_MS: '-10' }, /^streamer: CONSUMER_FLUSH_MS="-10" is not valid: expected a whole number from 0 to 60000/],
    [{ CLICKHOUSE_URL: 'ftp://u:hunter22@h/' }, /^streamer: CLICKHOUSE_URL="ftp:\/\/u:\*\*\*@h\/" has protocol ftp: — expected http: or https:\n$/],
  ])('a bad setting %j: one line naming it, exit 1, secret masked', async (env, message) => {
    const r = await runCli(['status'], env);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toContain('hunter22');
    expect(r.code).toBe(1);
  });

  it('consumer with ClickHouse unreachable: one line naming it and its address, exit 1, password masked', async () => {
    const r = await runCli(['consumer'], { CLICKHOUSE_URL: 'http://127.0.0.1:1', CLICKHOUSE_PASSWORD: 'ch-secret-9', HTTP_PORT: '0' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^streamer: ClickHouse at http:\/\/127\.0\.0\.1:1 is not reachable \(.*ECONNREFUSED.*\) — start it with "npm run stack:up" or set CLICKHOUSE_URL$/m);
    expect(r.stderr + r.stdout).not.toContain('ch-secret-9');
  });
});
