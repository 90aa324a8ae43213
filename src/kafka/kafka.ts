/**
 * The kafkajs client, configured once (brokers, TLS, SASL, logging into pino). Only this module
 * and the two role modules that wrap a producer (publisher.ts) and a consumer (consumer.ts) import
 * kafkajs, so a later switch of client stays local.
 */
import './kafkajs-patch.js'; // first: it must run before kafkajs loads
import { Kafka, logLevel, type KafkaConfig, type SASLOptions } from 'kafkajs';
import type { Config } from '../config/config.js';
import { describeError, StreamerError, UnreachableError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';

/** What kafkajs logs, for a caller that must react to it (see the consumer's topic watch). */
export type KafkaLogEntry = { namespace: string; message: string; error?: unknown };

/**
 * `brief`: for a command that reports and exits (status) or a scrape: one quick retry of the
 * connection instead of a service's five with up to 5 s between them — an unreachable Kafka is
 * reported in about a second.
 */
export function createKafka(config: Config, logger: Logger, clientSuffix = '', onEntry?: (entry: KafkaLogEntry) => void, { brief = false } = {}): Kafka {
  const log = logger.child({ component: 'kafkajs' });
  const kafkaConfig: KafkaConfig = {
    clientId: config.kafkaClientId + clientSuffix,
    brokers: config.kafkaBrokers,
    ssl: config.kafkaSsl,
    connectionTimeout: brief ? 1000 : 3000,
    requestTimeout: brief ? 5000 : 30_000,
    // kafkajs's own retries are short; our loops add the long, capped backoff on top.
    retry: brief ? { initialRetryTime: 100, retries: 1, maxRetryTime: 300 } : { initialRetryTime: 200, retries: 5, maxRetryTime: 5000 },
    // kafkajs logs every reconnect attempt as an error; our retry loops log each failure and
    // its next delay themselves, so kafkajs's own warnings and errors go to debug.
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, log: entry }) => {
      const { message, ...extra } = entry as { message: string } & Record<string, unknown>;
      log.debug({ namespace, ...extra }, message);
      onEntry?.({ namespace, message, error: extra.error });
    },
  };
  if (config.kafkaSasl) {
    kafkaConfig.sasl = {
      mechanism: config.kafkaSasl.mechanism,
      username: config.kafkaSasl.username,
      password: config.kafkaSasl.password,
    } as SASLOptions;
  }
  return new Kafka(kafkaConfig);
}

/**
 * The text kafkajs 2.2.4 gives UNKNOWN_TOPIC_OR_PARTITION (a unit test pins it): a broker answered
 * a request for a topic-partition it does not have — the topic was deleted, or metadata is stale.
 */
export const UNKNOWN_TOPIC_TEXT = 'This server does not host this topic-partition';

/** The error types with which a broker refuses a record for good (retrying cannot help). */
const REJECTED_TYPES = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'CORRUPT_MESSAGE', 'INVALID_TIMESTAMP']);

/** True when a send failed because the broker refuses a record itself, not because it is down. */
export function isRecordRejected(err: unknown): boolean {
  return hasKafkaErrorType(err, REJECTED_TYPES);
}

/** The error types with which a broker says it no longer knows an idempotent producer's state. */
const PRODUCER_STATE_TYPES = new Set(['OUT_OF_ORDER_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID', 'INVALID_PRODUCER_EPOCH', 'INVALID_PRODUCER_ID_MAPPING']);

/** True when only a new idempotent producer (a new producer id) can send again. */
export function isProducerStateLost(err: unknown): boolean {
  return hasKafkaErrorType(err, PRODUCER_STATE_TYPES);
}

/** kafkajs's error `type`, on the error or on what it wraps (retries wrap the last error). */
function hasKafkaErrorType(err: unknown, types: ReadonlySet<string>): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 6; depth++) {
    const type = (e as { type?: unknown }).type;
    if (typeof type === 'string' && types.has(type)) return true;
    e = (e as { cause?: unknown; originalError?: unknown }).cause ?? (e as { originalError?: unknown }).originalError;
  }
  return false;
}

/**
 * Error types and names with which Kafka says no for good: retrying cannot help until an operator
 * changes something (an ACL, a credential, a topic name). Everything else a Kafka client meets —
 * a broker down, a leader moving, a request timing out, a retry budget spent on those — is an
 * outage, retried.
 */
const PERMANENT_TYPES = new Set([
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'SASL_AUTHENTICATION_FAILED',
  'UNSUPPORTED_SASL_MECHANISM',
  'ILLEGAL_SASL_STATE',
  'INVALID_TOPIC_EXCEPTION',
  'UNSUPPORTED_VERSION',
  'POLICY_VIOLATION',
]);
const PERMANENT_NAMES = new Set(['KafkaJSSASLAuthenticationError']);

export function isKafkaRetriable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 6; depth++) {
    const { type, name } = e as { type?: unknown; name?: unknown };
    if ((typeof type === 'string' && PERMANENT_TYPES.has(type)) || (typeof name === 'string' && PERMANENT_NAMES.has(name))) return false;
    e = (e as { cause?: unknown; originalError?: unknown }).cause ?? (e as { originalError?: unknown }).originalError;
  }
  return true;
}

/** A Kafka error as a StreamerError: unreachable (retried), or refused for good with the reason. */
export function kafkaFailure(config: Config, err: unknown): StreamerError {
  if (err instanceof StreamerError) return err;
  if (isKafkaRetriable(err)) return new UnreachableError(kafkaUnreachableMessage(config, err), err);
  return new StreamerError(`Kafka at ${config.kafkaBrokers.join(',')} refused us: ${describeError(err)} — check the ACLs and credentials (KAFKA_SASL_*)`, { cause: err });
}

/** "Kafka at a:9092,b:9092 is not reachable (…)" with the fix. */
export function kafkaUnreachableMessage(config: Config, err: unknown): string {
  return `Kafka at ${config.kafkaBrokers.join(',')} is not reachable (${describeError(err)}) — start it with "npm run stack:up" or set KAFKA_BROKERS`;
}
