/**
 * The producer side of Kafka behind a narrow interface: publish a batch of encoded messages and
 * resolve once every one is acknowledged by all in-sync replicas.
 */
import type { Producer } from 'kafkajs';
import type { EncodedMessage } from '../tables/codec.js';
import type { Config } from '../config/config.js';
import { chunkBy } from '../common/chunks.js';
import { UnreachableError } from '../common/errors.js';
import { createKafka, isProducerStateLost, isRecordRejected, kafkaUnreachableMessage } from '../kafka/kafka.js';
import type { Logger } from '../common/logger.js';

export interface Publisher {
  connect(): Promise<void>;
  /**
   * Publishes every message or throws. Messages the broker refuses for good (too large, invalid)
   * do not fail the others: they are returned (the same objects) with the broker's reason.
   * A message's bytes are the caller's again once this settles (the producer reuses a committed
   * batch's buffers): whatever keeps them longer keeps a copy.
   */
  publish<M extends EncodedMessage>(topic: string, messages: readonly M[]): Promise<Array<{ message: M; error: string }>>;
  /** The topic's partitions (created with the broker's defaults when missing): a truncate marker goes to each. */
  partitions(topic: string): Promise<number[]>;
  /**
   * The publish in progress was given up (its deadline passed): the next publish uses a new Kafka
   * producer, so that the old one's retries of the abandoned send cannot interleave with it.
   */
  abandon(): void;
  close(): Promise<void>;
}

// One produce request per send; kafkajs does not split by size, and a broker refuses a record
// batch above message.max.bytes (1 MiB by default), so sends are cut at this many bytes of
// values. A single message above it is sent alone and the broker decides.
const SEND_BUDGET_BYTES = 512 * 1024;

/** The kafkajs producer the publisher uses; a seam for the unit test of the reset below. */
export type ProducerFactory = () => Pick<Producer, 'connect' | 'send' | 'disconnect'>;

export function createPublisher(config: Config, logger: Logger, makeProducer?: ProducerFactory): Publisher {
  const log = logger.child({ component: 'publisher' });
  const newProducer = makeProducer ?? kafkajsProducers(config, logger);
  const kafka = createKafka(config, logger, '-producer-admin');
  let producer = newProducer();
  // kafkajs's idempotent producer never recovers from the broker losing track of its sequence
  // numbers (OUT_OF_ORDER_SEQUENCE_NUMBER and kin): every later send fails the same way. Seen in
  // the fault suite when Kafka stopped with a produce request in flight. The cure is a new
  // producer (a new producer id, sequences from 0), made before the next publish.
  let replace = false;

  const connectProducer = async () => {
    try {
      await producer.connect();
    } catch (err) {
      throw new UnreachableError(kafkaUnreachableMessage(config, err), err);
    }
  };

  // The messages go to kafkajs as they are, not copied (kafkajs and our record batch encoder read
  // a message's key, value, timestamp, partition and headers: an EncodedMessage has no headers,
  // and any other field of the caller's objects is not read).
  const send = async (topic: string, messages: readonly EncodedMessage[]) => {
    try {
      await producer.send({ topic, acks: -1, timeout: 30_000, messages: messages as EncodedMessage[] });
    } catch (err) {
      if (isProducerStateLost(err)) replace = true;
      throw err;
    }
  };

  return {
    connect: connectProducer,
    abandon() {
      replace = true;
    },
    async partitions(topic) {
      const admin = kafka.admin({ retry: { retries: 2 } });
      try {
        await admin.connect();
        await admin.createTopics({ topics: [{ topic }], waitForLeaders: true }).catch(() => false);
        const meta = await admin.fetchTopicMetadata({ topics: [topic] });
        return (meta.topics[0]?.partitions ?? []).map((p) => p.partitionId).sort((a, b) => a - b);
      } finally {
        await admin.disconnect().catch(() => {});
      }
    },
    async publish(topic, messages) {
      if (replace) {
        log.warn('starting a new idempotent Kafka producer (the broker lost track of the old one\'s sequence numbers, or a publish was given up)');
        const old = producer;
        producer = newProducer();
        await old.disconnect().catch(() => {});
        await connectProducer(); // throws while Kafka is down: the next publish tries again
        replace = false;
      }
      const rejected: Array<{ message: (typeof messages)[number]; error: string }> = [];
      for (const chunk of chunkBySize(messages, SEND_BUDGET_BYTES)) {
        try {
          await send(topic, chunk);
        } catch (err) {
          if (!isRecordRejected(err)) throw err;
          // Find the culprit(s): one by one. Messages of this chunk that had already been
          // written on another partition are written again (the topic is at-least-once; the
          // consumer drops the duplicate).
          log.warn({ err, messages: chunk.length }, 'Kafka refused a record: publishing this chunk one message at a time');
          for (const m of chunk) {
            try {
              await send(topic, [m]);
            } catch (e) {
              if (!isRecordRejected(e)) throw e;
              rejected.push({ message: m, error: `Kafka refused the message (${m.value.length} bytes): ${(e as Error).message}` });
            }
          }
        }
      }
      return rejected;
    },
    async close() {
      await producer.disconnect().catch((err: unknown) => log.warn({ err }, 'Kafka producer did not close cleanly'));
    },
  };
}

function kafkajsProducers(config: Config, logger: Logger): ProducerFactory {
  const kafka = createKafka(config, logger, '-producer');
  return () =>
    kafka.producer({
      // Idempotent: a retried produce request is not written twice. kafkajs's own retries (8, each
      // up to its 30 s request timeout on a hung broker) are cut short by the producer's deadline
      // (PRODUCER_PUBLISH_TIMEOUT_MS, 30 s): the PostgreSQL transaction rolls back, the rows stay
      // pending, and the producer's capped backoff takes over.
      idempotent: true,
      maxInFlightRequests: 1,
      retry: { initialRetryTime: 300, retries: 8, maxRetryTime: 5000 },
      allowAutoTopicCreation: true,
    });
}

/** Cuts a list of messages into runs whose values add up to at most `budget` bytes. */
export function chunkBySize<M extends EncodedMessage>(messages: readonly M[], budget: number): Array<readonly M[]> {
  // All in one run (a backlog's 2,000-message batches are ~200 KB): the list itself, not a copy.
  let size = 0;
  for (const m of messages) size += messageSize(m);
  if (size <= budget) return messages.length > 0 ? [messages] : [];
  return chunkBy(messages, budget, messageSize);
}

const messageSize = (m: EncodedMessage) => m.value.length + (m.key?.length ?? 0);
