import { describe, expect, it } from 'vitest';
// As in src/: the patch is imported by the modules that use kafkajs, before kafkajs.
import { createPublisher } from '../../src/capture/publisher.js';
import { groupMessagesPerPartition, kafkajsPatch } from '../../src/kafka/kafkajs-patch.js';
import { createRequire } from 'node:module';
import { UNKNOWN_TOPIC_TEXT } from '../../src/kafka/kafka.js';

describe('kafkajs patch: linear grouping of a send by partition', () => {
  const partitionMetadata = [{ partitionId: 0 }, { partitionId: 1 }, { partitionId: 2 }];
  const partitioner = ({ message }: { message: { key: string } }) => Number(message.key) % 3;

  it('took: kafkajs uses our function', () => {
    expect(typeof createPublisher).toBe('function');
    expect(kafkajsPatch.active).toBe(true);
    const require = createRequire(import.meta.url);
    expect(require('kafkajs/src/producer/groupMessagesPerPartition.js')).toBe(groupMessagesPerPartition);
  });

  it('groups exactly like kafkajs: same partitions, same messages, same order', () => {
    const messages = Array.from({ length: 1000 }, (_, i) => ({ key: String((i * 7919) % 1000), value: `v${i}` }));
    const args = { topic: 't', partitionMetadata, messages, partitioner };
    const ours = groupMessagesPerPartition(args);
    expect(ours).toEqual(kafkajsPatch.original(args));
    expect(Object.keys(ours).sort()).toEqual(['0', '1', '2']);
    expect(Object.values(ours).reduce((n, a) => n + a.length, 0)).toBe(1000);
  });

  it('returns {} without partition metadata, as kafkajs does', () => {
    const args = { topic: 't', partitionMetadata: [], messages: [{ key: '1' }], partitioner };
    expect(groupMessagesPerPartition(args)).toEqual({});
    expect(kafkajsPatch.original(args)).toEqual({});
  });
});

describe('what the consumer reads in kafkajs 2.2.4 log lines', () => {
  it('UNKNOWN_TOPIC_OR_PARTITION carries the text the topic watch looks for (src/consumer.ts)', () => {
    const { errorCodes } = createRequire(import.meta.url)('kafkajs/src/protocol/error.js') as { errorCodes: Array<{ type: string; message: string }> };
    expect(errorCodes.find((e) => e.type === 'UNKNOWN_TOPIC_OR_PARTITION')?.message).toBe(UNKNOWN_TOPIC_TEXT);
  });
});
