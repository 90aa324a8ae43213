import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/common/logger.js';
import { createPublisher, type ProducerFactory } from '../../src/capture/publisher.js';

/** kafkajs's error for a broker that lost the idempotent producer's sequence (as kafkajs builds it). */
function protocolError(type: string) {
  return Object.assign(new Error('The broker received an out of order sequence number'), { name: 'KafkaJSProtocolError', type, retriable: false });
}

describe('publisher: what kafkajs is given', () => {
  it('the messages themselves, timestamps and partitions as they are, and refused ones returned as the same objects', async () => {
    const config = loadConfig({});
    const logger = createLogger({ level: 'silent' });
    const sent: unknown[][] = [];
    const factory: ProducerFactory = () => ({
      connect: async () => {},
      disconnect: async () => {},
      send: async ({ messages }) => {
        sent.push(messages);
        if (messages.some((m) => m.key === 'bad')) throw Object.assign(new Error('too large'), { name: 'KafkaJSProtocolError', type: 'MESSAGE_TOO_LARGE', retriable: false });
        return [];
      },
    });
    const publisher = createPublisher(config, logger, factory);
    await publisher.connect();
    const a = { key: '1', value: Buffer.from('{"id":1}'), timestamp: '1700000000000', extra: 'x' };
    const marker = { key: null, value: Buffer.from('{"_op":"truncate","_version":2}'), timestamp: '1700000000001', partition: 3 };
    expect(await publisher.publish('t', [a, marker])).toEqual([]);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toHaveLength(2);
    expect(sent[0]![0]).toBe(a);
    expect(sent[0]![1]).toBe(marker);
    const bad = { key: 'bad', value: Buffer.from('{}'), timestamp: '1700000000002' };
    const refused = await publisher.publish('t', [a, bad]);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.message).toBe(bad);
    expect(refused[0]!.error).toMatch(/too large/);
  });
});

describe('publisher: a new idempotent producer when Kafka lost track of the old one', () => {
  const config = loadConfig({});
  const logger = createLogger({ level: 'silent' });
  const message = { key: '1', value: Buffer.from('{"id":1}') };

  function fakeKafka(failures: Array<Error | null>) {
    const made: Array<{ sent: number; connected: boolean; disconnected: boolean }> = [];
    const factory: ProducerFactory = () => {
      const p = { sent: 0, connected: false, disconnected: false };
      made.push(p);
      return {
        connect: async () => void (p.connected = true),
        disconnect: async () => void (p.disconnected = true),
        send: async () => {
          if (!p.connected || p.disconnected) throw new Error('The producer is disconnected');
          const failure = failures.shift() ?? null;
          if (failure) throw failure;
          p.sent++;
          return [];
        },
      };
    };
    return { made, factory };
  }

  it('fails the batch that met the error, then publishes with a new, connected producer', async () => {
    const { made, factory } = fakeKafka([protocolError('OUT_OF_ORDER_SEQUENCE_NUMBER')]);
    const publisher = createPublisher(config, logger, factory);
    await publisher.connect();
    await expect(publisher.publish('t', [message])).rejects.toThrow(/out of order sequence/);
    expect(made).toHaveLength(1); // replaced lazily, at the next publish
    expect(await publisher.publish('t', [message])).toEqual([]);
    expect(made).toHaveLength(2);
    expect(made[0]).toMatchObject({ disconnected: true, sent: 0 });
    expect(made[1]).toMatchObject({ connected: true, disconnected: false, sent: 1 });
  });

  it('finds the type under kafkajs\'s retry wrapper too; other errors keep the producer', async () => {
    const wrapped = Object.assign(new Error('retries exceeded'), { name: 'KafkaJSNumberOfRetriesExceeded', originalError: protocolError('UNKNOWN_PRODUCER_ID') });
    const { made, factory } = fakeKafka([new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092'), wrapped]);
    const publisher = createPublisher(config, logger, factory);
    await publisher.connect();
    await expect(publisher.publish('t', [message])).rejects.toThrow(/ECONNREFUSED/);
    await expect(publisher.publish('t', [message])).rejects.toThrow(/retries exceeded/);
    expect(made).toHaveLength(1);
    await publisher.publish('t', [message]);
    expect(made).toHaveLength(2);
    expect(made[1]!.sent).toBe(1);
  });
});
