// Issue 13's settings: the consumer group's default name, the health server's address per command.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/common/errors.js';
import { DEFAULT_HTTP_PORTS, loadConfig } from '../../src/config/config.js';
import { defaultGroupId, isEarlierDefaultGroup, LEGACY_GROUP_ID } from '../../src/config/group.js';
import { httpListen } from '../../src/ops/cli.js';

const errorOf = (env: Record<string, string>): string => {
  try {
    loadConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('no error');
};

describe('the default consumer group', () => {
  it('names the ClickHouse server, database and topics; KAFKA_GROUP_ID overrides', () => {
    const c = loadConfig({});
    expect(c.kafkaGroupId).toBe('streamer-clickhouse.127.0.0.1:8123.default.user_event');
    expect(c.kafkaGroupIdDefault).toBe(true);
    const set = loadConfig({ KAFKA_GROUP_ID: 'mine' });
    expect([set.kafkaGroupId, set.kafkaGroupIdDefault]).toEqual(['mine', false]);
  });

  it('differs between two pipelines: other topics, another database, another ClickHouse server', () => {
    const names = [
      loadConfig({ KAFKA_TOPIC: 'a' }),
      loadConfig({ KAFKA_TOPIC: 'b' }),
      loadConfig({ KAFKA_TOPIC: 'a', CLICKHOUSE_DATABASE: 'analytics' }),
      loadConfig({ KAFKA_TOPIC: 'a', CLICKHOUSE_URL: 'https://ch.example.com:8443' }),
    ].map((c) => c.kafkaGroupId);
    expect(names).toEqual([
      'streamer-clickhouse.127.0.0.1:8123.default.a',
      'streamer-clickhouse.127.0.0.1:8123.default.b',
      'streamer-clickhouse.127.0.0.1:8123.analytics.a',
      'streamer-clickhouse.ch.example.com:8443.default.a',
    ]);
  });

  it('lists topics sorted, and hashes a list too long to read', () => {
    const url = 'http://127.0.0.1:8123';
    expect(defaultGroupId(url, 'db', ['z', 'a', 'm'])).toBe('streamer-clickhouse.127.0.0.1:8123.db.a+m+z');
    const many = Array.from({ length: 30 }, (_, i) => `public.table_number_${i}`);
    const id = defaultGroupId(url, 'db', many);
    expect(id).toMatch(/^streamer-clickhouse\.127\.0\.0\.1:8123\.db\.30-topics-[0-9a-f]{12}$/);
    expect(defaultGroupId(url, 'db', [...many].reverse())).toBe(id);
    expect(defaultGroupId(url, 'db', [...many.slice(1)])).not.toBe(id);
  });

  it('takes over from the former default and from defaults of the same server and database only', () => {
    const url = 'http://127.0.0.1:8123';
    const own = defaultGroupId(url, 'db', ['a', 'b']);
    const earlier = (g: string) => isEarlierDefaultGroup(g, own, url, 'db');
    expect(earlier(LEGACY_GROUP_ID)).toBe(true);
    expect(earlier(defaultGroupId(url, 'db', ['a']))).toBe(true);
    expect(earlier(own)).toBe(false);
    expect(earlier(defaultGroupId(url, 'db2', ['a']))).toBe(false);
    expect(earlier(defaultGroupId('http://other:8123', 'db', ['a']))).toBe(false);
    expect(earlier(defaultGroupId('http://127.0.0.1:8124', 'db', ['a']))).toBe(false);
    expect(earlier('someone-else')).toBe(false);
  });
});

describe('the health/metrics address', () => {
  it('each command has its own default port; HTTP_PORT sets one, 0 turns it off', () => {
    const defaults = loadConfig({});
    expect(DEFAULT_HTTP_PORTS).toEqual({ run: 9464, producer: 9465, consumer: 9466 });
    expect(httpListen(defaults, 'run')).toEqual({ host: '127.0.0.1', port: 9464, defaultOf: 'run' });
    expect(httpListen(defaults, 'producer')).toEqual({ host: '127.0.0.1', port: 9465, defaultOf: 'producer' });
    expect(httpListen(defaults, 'consumer')).toEqual({ host: '127.0.0.1', port: 9466, defaultOf: 'consumer' });
    expect(httpListen(loadConfig({ HTTP_PORT: '9000', HTTP_HOST: '0.0.0.0' }), 'consumer')).toEqual({ host: '0.0.0.0', port: 9000 });
    expect(httpListen(loadConfig({ HTTP_PORT: '0' }), 'run')).toBeNull();
    expect(loadConfig({ HTTP_HOST: '[::]' }).httpHost).toBe('::');
  });

  it.each([
    [{ HTTP_PORT: '70000' }, /^HTTP_PORT="70000" is not valid: expected a whole number from 0 to 65535 \(default per command: run 9464, producer 9465, consumer 9466; 0 turns it off\)$/],
    [{ HTTP_HOST: 'http://0.0.0.0' }, /^HTTP_HOST="http:\/\/0\.0\.0\.0" is not valid: expected an address to listen on, e\.g\. 127\.0\.0\.1/],
  ])('rejects %j with one line naming the key', (env, message) => {
    expect(errorOf(env)).toMatch(message);
  });
});
