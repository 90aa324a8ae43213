import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import type { Config } from '../../src/config/config.js';
import { waitFor } from './wait.js';

export interface TopicMessage {
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
  partition: number;
  offset: string;
}

const kafkaOf = (config: Config) => new Kafka({ brokers: config.kafkaBrokers, logLevel: logLevel.NOTHING, clientId: 'test' });

/** Number of messages in a topic (sum over partitions of high − low watermark); 0 if it does not exist. */
export async function topicMessageCount(config: Config, topic = config.kafkaTopic): Promise<number> {
  const admin = kafkaOf(config).admin();
  await admin.connect();
  try {
    const topics = await admin.listTopics();
    if (!topics.includes(topic)) return 0;
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, p) => sum + (Number(p.high) - Number(p.low)), 0);
  } finally {
    await admin.disconnect();
  }
}

/** Reads a topic from the beginning with a throw-away group until it has `count` messages. */
export async function readTopic(config: Config, count: number, topic = config.kafkaTopic, timeoutMs = 60_000): Promise<TopicMessage[]> {
  // The topic appears when the producer first publishes: wait for it and its leaders.
  await waitFor(`topic ${topic}`, async () => {
    const admin = kafkaOf(config).admin();
    await admin.connect();
    try {
      return (await admin.listTopics()).includes(topic) && (await admin.fetchTopicOffsets(topic)).length > 0 ? true : undefined;
    } finally {
      await admin.disconnect();
    }
  }, timeoutMs);
  const consumer = kafkaOf(config).consumer({ groupId: `test-reader-${randomBytes(4).toString('hex')}`, maxWaitTimeInMs: 100 });
  const got: TopicMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message, partition }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        got.push({ key: message.key?.toString('utf8') ?? null, value: message.value, headers, partition, offset: message.offset });
      },
    });
    await waitFor(`${count} messages on ${topic} (have ${got.length})`, () => (got.length >= count ? true : undefined), timeoutMs);
  } finally {
    await consumer.disconnect();
  }
  return got;
}
