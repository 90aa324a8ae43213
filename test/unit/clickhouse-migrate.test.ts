import { describe, expect, it } from 'vitest';
import { placeholderValues, splitStatements, substitute } from '../../src/clickhouse-migrate.js';
import { readMigrations, SQL_DIR } from '../../src/migrations.js';

describe('ClickHouse migrations', () => {
  it('fills the placeholders from the validated database name and the server version', () => {
    const [m] = readMigrations(`${SQL_DIR}clickhouse`);
    const old = substitute(m!.sql, placeholderValues('analytics', { major: 18, minor: 16 }));
    expect(old).toContain('CREATE TABLE IF NOT EXISTS analytics.user_login');
    expect(old).toContain("event_time      Nullable(DateTime('UTC'))");
    const modern = substitute(m!.sql, placeholderValues('analytics', { major: 24, minor: 8 }));
    expect(modern).toContain("event_time      Nullable(DateTime64(6, 'UTC'))");
    expect(modern).not.toMatch(/\{\{/);
  });

  it('refuses an unknown placeholder', () => {
    expect(() => substitute('SELECT {{nope}}', {})).toThrow(/unknown placeholder \{\{nope\}\}/);
  });

  it('splits a file into statements, without comments', () => {
    expect(splitStatements('-- a; comment\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\nCREATE TABLE b (s String) ENGINE = Memory;\n')).toEqual([
      'CREATE TABLE a (x UInt8) ENGINE = Memory',
      'CREATE TABLE b (s String) ENGINE = Memory',
    ]);
  });
});
