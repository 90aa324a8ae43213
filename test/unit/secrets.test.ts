// Issue 9, finding 8 — secrets that still showed: a password containing '@' in a URL was masked
// only up to its first '@'; a password embedded in CLICKHOUSE_URL was not among the known
// secrets; secrets shorter than 3 characters were never masked in free text.
import { describe, expect, it } from 'vitest';
import { configSecrets, loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/common/logger.js';
import { maskUrl, redactText } from '../../src/common/redact.js';

describe('secrets never reach a log line or an error message', () => {
  it('masks a URL password that contains @ (the URL parser splits at the last @ before the host)', () => {
    const url = 'postgres://app:p@ss@w0rd@db.example:5432/x';
    expect(new URL(url).password).toBe('p%40ss%40w0rd'); // what the driver will use: p@ss@w0rd
    expect(maskUrl(url)).toBe('postgres://app:***@db.example:5432/x');
    expect(redactText(`could not connect to ${url}: refused`)).toBe('could not connect to postgres://app:***@db.example:5432/x: refused');
  });

  it('takes a password embedded in CLICKHOUSE_URL as a secret', () => {
    const config = loadConfig({ CLICKHOUSE_URL: 'http://reader:s3cr3t-pw@ch.example:8123' });
    expect(configSecrets(config)).toContain('s3cr3t-pw');
    expect(redactText('Authentication failed: password s3cr3t-pw is incorrect', configSecrets(config))).toBe('Authentication failed: password *** is incorrect');
  });

  it('masks short secrets where they stand alone, without mangling words that contain them', () => {
    expect(redactText('password "ab" rejected for user ab', ['ab'])).toBe('password "***" rejected for user ***');
    expect(redactText('about absent tables', ['ab'])).toBe('about absent tables');
    expect(redactText('pin 7 is wrong; 17 is not it', ['7'])).toBe('pin *** is wrong; 17 is not it');
  });

  it('a logger never writes a configured secret, whatever its length or place', () => {
    const config = loadConfig({ CLICKHOUSE_URL: 'http://u:q@ch.example:8123', DATABASE_URL: 'postgres://app:p@ss@db/x', CLICKHOUSE_PASSWORD: 'zz' });
    const out: string[] = [];
    const log = createLogger({ secrets: configSecrets(config), pretty: false, destination: { write: (l: string) => void out.push(l) } });
    log.warn({ url: config.clickhouseUrl, db: config.databaseUrl, err: new Error('login zz failed for q') }, 'failed with p@ss');
    const line = out.join('');
    expect(line).not.toMatch(/p@ss|:q@|\bzz\b|for q\b/);
  });
});
