import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { ConfigError } from '../../src/common/errors.js';

describe('config', () => {
  it('defaults point at the local stack', () => {
    const c = loadConfig({});
    expect(c.databaseUrl).toBe('postgres://postgres:postgres@127.0.0.1:5432/postgres');
    expect(c.kafkaBrokers).toEqual(['127.0.0.1:9092']);
    expect(c.kafkaTopic).toBe('user_event');
    expect(c.kafkaDlqTopic).toBe('user_event.dlq');
    expect(c.clickhouseUrl).toBe('http://127.0.0.1:8123');
    expect(c.clickhouseDatabase).toBe('default');
    expect(c.producerBatchSize).toBe(2000);
    expect(c.producerSweepBatchSize).toBe(5000); // `producer --sweep` only
    expect(loadConfig({ PRODUCER_BATCH_SIZE: '300' })).toMatchObject({ producerBatchSize: 300, producerSweepBatchSize: 300 });
    expect(c.sweepIntervalMs).toBe(5000);
    expect(c.producerFollowUpMs).toBe(50);
  });

  it.each([
    [{ PRODUCER_BATCH_SIZE: '-5' }, /^PRODUCER_BATCH_SIZE="-5" is not valid: expected a whole number from 1 to 100000/],
    [{ PRODUCER_BATCH_SIZE: 'lots' }, /^PRODUCER_BATCH_SIZE="lots"/],
    [{ KAFKA_BROKERS: 'localhost' }, /^KAFKA_BROKERS="localhost" is not valid: expected host:port/],
    [{ DATABASE_URL: 'mysql://u:secret@h/db' }, /^DATABASE_URL="mysql:\/\/u:\*\*\*@h\/db" has protocol mysql:/],
    [{ CLICKHOUSE_URL: 'not a url' }, /^CLICKHOUSE_URL="not a url" is not a valid URL/],
    [{ CLICKHOUSE_DATABASE: 'x; DROP TABLE y' }, /^CLICKHOUSE_DATABASE=.* is not valid/],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL="loud" is not valid/],
    [{ KAFKA_SASL_MECHANISM: 'plain' }, /needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD/],
  ])('rejects %j with one line naming the key', (env, message) => {
    let err: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('\n');
    expect((err as Error).message).not.toContain('secret');
  });
});
