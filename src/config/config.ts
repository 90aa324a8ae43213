import { ConfigError } from '../common/errors.js';
import { maskUrl } from '../common/redact.js';
import type { TableConfig } from '../tables/spec.js';
import { defaultGroupId } from './group.js';
import { tableConfigs } from './tables.js';

/**
 * The one configuration object. Every field is read from an environment variable and has a
 * default that works against the local stack (`npm run stack:up`) and docker-compose.yml, so
 * nothing needs configuring there. Validated once, at start-up: a bad value is one line naming
 * the variable, the value (secrets masked) and what is allowed.
 */
export interface Config {
  /**
   * STREAMER_TABLES (comma-separated `[schema.]table`, default public.user_login) with the per-table
   * overrides of the STREAMER_CONFIG file (src/config/tables.ts): the tables replicated.
   */
  tables: TableConfig[];
  /** DATABASE_URL — PostgreSQL holding the tables. Default postgres://postgres:postgres@127.0.0.1:5432/postgres */
  databaseUrl: string;
  /** PGSSLMODE-like switch: DATABASE_SSL=true turns TLS on (also `?sslmode=require` in the URL). Default false. */
  databaseSsl: boolean;
  /** KAFKA_BROKERS — comma-separated host:port list. Default 127.0.0.1:9092 */
  kafkaBrokers: string[];
  /** The first table's topic (KAFKA_TOPIC for a single table; default user_event for user_login). */
  kafkaTopic: string;
  /** The first table's dead-letter topic (KAFKA_DLQ_TOPIC for a single table; default `<topic>.dlq`). */
  kafkaDlqTopic: string;
  /**
   * KAFKA_GROUP_ID — the consumer group writing to ClickHouse. Default derived from the topics and
   * the ClickHouse server and database (src/config/group.ts), e.g.
   * streamer-clickhouse.127.0.0.1:8123.default.user_event
   */
  kafkaGroupId: string;
  /** True when kafkaGroupId is the derived default (then earlier default groups' offsets are taken over). */
  kafkaGroupIdDefault: boolean;
  /** KAFKA_CLIENT_ID. Default streamer */
  kafkaClientId: string;
  /** KAFKA_SSL=true for TLS to the brokers. Default false */
  kafkaSsl: boolean;
  /** KAFKA_SASL_MECHANISM (plain | scram-sha-256 | scram-sha-512), KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD. Default none */
  kafkaSasl: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string } | null;
  /** CLICKHOUSE_URL — HTTP(S) interface. Default http://127.0.0.1:8123 */
  clickhouseUrl: string;
  /** CLICKHOUSE_DATABASE. Default `default` */
  clickhouseDatabase: string;
  /** CLICKHOUSE_USER. Default `default` */
  clickhouseUser: string;
  /** CLICKHOUSE_PASSWORD. Default empty */
  clickhousePassword: string;
  /** LOG_LEVEL — trace | debug | info | warn | error | fatal | silent. Default info */
  logLevel: string;
  /** PRODUCER_BATCH_SIZE — rows claimed, published and marked per transaction. Default 2000 */
  producerBatchSize: number;
  /**
   * The same for `producer --sweep`, a one-off catch-up of a backlog: PRODUCER_BATCH_SIZE when
   * set, else 5000 — larger transactions move a backlog faster (issue 14: +10–35 % in the sweep),
   * holding each batch's row locks longer (~0.15 s at the sweep's rate: 5,000 rows ÷ ~64,000
   * rows/s × 2 batches in flight), which a long-running producer serving live changes keeps shorter.
   */
  producerSweepBatchSize: number;
  /**
   * PRODUCER_CONCURRENCY — batches of one table in flight at once while it has a backlog (a pass
   * starts with one batch, and goes on with several once that came back full): claims and
   * publishes stay in order, a batch's publish overlaps the next one's claim and the previous
   * one's commit. 1 = one batch at a time (before issue 14). Default 2
   */
  producerConcurrency: number;
  /**
   * SWEEP_INTERVAL_MS — the periodic sweep, the backstop for rows no notification announced (of the
   * transactions open together, one per 10 ms notifies). Default 5000: an idle sweep is one
   * probe of the partial index.
   */
  sweepIntervalMs: number;
  /**
   * PRODUCER_FOLLOW_UP_MS — a pass that published rows is followed by one more this much later,
   * for rows whose transaction did not notify and committed just after the pass. Default 50
   */
  producerFollowUpMs: number;
  /** CONSUMER_MAX_BATCH_ROWS — the most rows in one ClickHouse insert. Default 20000 */
  consumerMaxBatchRows: number;
  /**
   * CONSUMER_FLUSH_MS — how long the first row of a batch may wait for more before the insert.
   * Higher: fewer, larger ClickHouse parts, more latency. Default 2 (at 1,000 rows/s: p50 57 ms
   * with 2, 66 ms with 10 on our ClickHouse 18.16; 34 vs 28 inserts/s, 5 active parts either way —
   * see README "Performance").
   */
  consumerFlushMs: number;
  /**
   * CONSUMER_REBALANCE_TIMEOUT_MS — how long the group waits for a member to rejoin during a
   * rebalance (kafkajs `rebalanceTimeout`). A member holding a batch it cannot store gives it up
   * when a rebalance starts and rejoins; an insert in flight is waited for, which is why this must
   * exceed CLICKHOUSE_REQUEST_TIMEOUT_MS. Default 60000
   */
  consumerRebalanceTimeoutMs: number;
  /**
   * CLICKHOUSE_REQUEST_TIMEOUT_MS — a ClickHouse request (an insert) that has not answered by then
   * is given up by the client; the server may still finish it, and the retry waits for that
   * (issue 9). Default 30000: a 20,000-row insert takes well under a second.
   */
  clickhouseRequestTimeoutMs: number;
  /**
   * DATABASE_QUERY_TIMEOUT_MS — the deadline of every query of the producer and the LISTEN
   * connection, on the client (a half-open connection is noticed and replaced) and as the
   * server's statement_timeout. Default 30000
   */
  databaseQueryTimeoutMs: number;
  /**
   * PRODUCER_PUBLISH_TIMEOUT_MS — how long a batch may wait for Kafka's acknowledgement while its
   * rows are locked in the claim transaction; past it the transaction rolls back, the rows stay
   * pending, and a new Kafka producer is made for the next attempt. Default 30000
   */
  producerPublishTimeoutMs: number;
  /**
   * HTTP_PORT — /healthz, /readyz, /metrics; 0 turns the server off. Null when not set: then each
   * command has its own port (DEFAULT_HTTP_PORTS), so run, producer and consumer coexist on a host.
   */
  httpPort: number | null;
  /** HTTP_HOST — the address the health/metrics server listens on. Default 127.0.0.1; 0.0.0.0 in a container */
  httpHost: string;
  /** RETRY_MAX_DELAY_MS — cap of the exponential backoff when a service is down. Default 30000 */
  retryMaxDelayMs: number;
}

type Env = Record<string, string | undefined>;

/** The health/metrics port of each long-running command when HTTP_PORT is not set. */
export const DEFAULT_HTTP_PORTS = { run: 9464, producer: 9465, consumer: 9466 } as const;
export type ServiceRole = keyof typeof DEFAULT_HTTP_PORTS;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const SASL = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;
// Identifiers we interpolate into ClickHouse DDL (the database name) must be plain words.
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function loadConfig(env: Env = process.env): Config {
  const str = (key: string, def: string): string => {
    const v = env[key];
    return v === undefined || v.trim() === '' ? def : v.trim();
  };
  const int = (key: string, def: number, min: number, max: number, defText = String(def)): number => {
    const raw = env[key];
    if (raw === undefined || raw.trim() === '') return def;
    const n = Number(raw.trim());
    if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new ConfigError(`${key}=${JSON.stringify(raw)} is not valid: expected a whole number from ${min} to ${max} (default ${defText})`);
    }
    return n;
  };
  const bool = (key: string, def: boolean): boolean => {
    const raw = env[key];
    if (raw === undefined || raw.trim() === '') return def;
    const v = raw.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
    throw new ConfigError(`${key}=${JSON.stringify(raw)} is not valid: expected true or false`);
  };
  const url = (key: string, def: string, protocols: string[]): string => {
    const v = str(key, def);
    let parsed: URL;
    try {
      parsed = new URL(v);
    } catch {
      throw new ConfigError(`${key}=${JSON.stringify(maskUrl(v))} is not a valid URL: expected e.g. ${def.replace(/:[^:@/]+@/, ':***@')}`);
    }
    if (!protocols.includes(parsed.protocol)) {
      throw new ConfigError(`${key}=${JSON.stringify(maskUrl(v))} has protocol ${parsed.protocol} — expected ${protocols.join(' or ')}`);
    }
    return v;
  };

  const databaseUrl = url('DATABASE_URL', 'postgres://postgres:postgres@127.0.0.1:5432/postgres', ['postgres:', 'postgresql:']);
  const kafkaBrokers = str('KAFKA_BROKERS', '127.0.0.1:9092').split(',').map((b) => b.trim()).filter(Boolean);
  for (const b of kafkaBrokers) {
    const m = /^([^\s:/]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(b);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
      throw new ConfigError(`KAFKA_BROKERS=${JSON.stringify(env.KAFKA_BROKERS)} is not valid: expected host:port[,host:port…], e.g. 127.0.0.1:9092`);
    }
  }
  const tables = tableConfigs(env);
  const first = tables[0] as TableConfig;
  const clickhouseDatabase = str('CLICKHOUSE_DATABASE', 'default');
  if (!IDENTIFIER.test(clickhouseDatabase)) {
    throw new ConfigError(`CLICKHOUSE_DATABASE=${JSON.stringify(clickhouseDatabase)} is not valid: letters, digits and '_' only, not starting with a digit`);
  }
  const logLevel = str('LOG_LEVEL', 'info').toLowerCase();
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL=${JSON.stringify(env.LOG_LEVEL)} is not valid: expected one of ${LOG_LEVELS.join(', ')}`);
  }
  let kafkaSasl: Config['kafkaSasl'] = null;
  const mechanism = str('KAFKA_SASL_MECHANISM', '').toLowerCase();
  if (mechanism) {
    if (!(SASL as readonly string[]).includes(mechanism)) {
      throw new ConfigError(`KAFKA_SASL_MECHANISM=${JSON.stringify(mechanism)} is not valid: expected one of ${SASL.join(', ')}`);
    }
    const username = str('KAFKA_SASL_USERNAME', '');
    const password = env.KAFKA_SASL_PASSWORD ?? '';
    if (!username || !password) {
      throw new ConfigError(`KAFKA_SASL_MECHANISM=${mechanism} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD to be set`);
    }
    kafkaSasl = { mechanism: mechanism as (typeof SASL)[number], username, password };
  }

  const clickhouseRequestTimeoutMs = int('CLICKHOUSE_REQUEST_TIMEOUT_MS', 30_000, 100, 3_600_000);
  const consumerRebalanceTimeoutMs = int('CONSUMER_REBALANCE_TIMEOUT_MS', 60_000, 1000, 3_600_000);
  if (consumerRebalanceTimeoutMs <= clickhouseRequestTimeoutMs) {
    throw new ConfigError(
      `CONSUMER_REBALANCE_TIMEOUT_MS=${consumerRebalanceTimeoutMs} must be larger than CLICKHOUSE_REQUEST_TIMEOUT_MS=${clickhouseRequestTimeoutMs}: a member waits for its insert in flight before it rejoins a rebalance`,
    );
  }

  const clickhouseUrl = url('CLICKHOUSE_URL', 'http://127.0.0.1:8123', ['http:', 'https:']);
  const groupId = str('KAFKA_GROUP_ID', '');
  const httpHost = str('HTTP_HOST', '127.0.0.1');
  if (!/^(\[?[0-9A-Fa-f:.]+\]?|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$/.test(httpHost)) {
    throw new ConfigError(`HTTP_HOST=${JSON.stringify(httpHost)} is not valid: expected an address to listen on, e.g. 127.0.0.1 (this host only), 0.0.0.0 (every IPv4 interface, as in a container) or ::`);
  }

  return {
    tables,
    databaseUrl,
    databaseSsl: bool('DATABASE_SSL', false),
    kafkaBrokers,
    kafkaTopic: first.topic,
    kafkaDlqTopic: first.dlqTopic,
    kafkaGroupId: groupId || defaultGroupId(clickhouseUrl, clickhouseDatabase, tables.map((t) => t.topic)),
    kafkaGroupIdDefault: groupId === '',
    kafkaClientId: str('KAFKA_CLIENT_ID', 'streamer'),
    kafkaSsl: bool('KAFKA_SSL', false),
    kafkaSasl,
    clickhouseUrl,
    clickhouseDatabase,
    clickhouseUser: str('CLICKHOUSE_USER', 'default'),
    clickhousePassword: env.CLICKHOUSE_PASSWORD ?? '',
    logLevel,
    producerBatchSize: int('PRODUCER_BATCH_SIZE', 2000, 1, 100_000),
    producerSweepBatchSize: int('PRODUCER_BATCH_SIZE', 5000, 1, 100_000, '2000; 5000 for --sweep'),
    producerConcurrency: int('PRODUCER_CONCURRENCY', 2, 1, 8),
    sweepIntervalMs: int('SWEEP_INTERVAL_MS', 5000, 100, 86_400_000),
    producerFollowUpMs: int('PRODUCER_FOLLOW_UP_MS', 50, 1, 60_000),
    consumerMaxBatchRows: int('CONSUMER_MAX_BATCH_ROWS', 20_000, 1, 1_000_000),
    consumerFlushMs: int('CONSUMER_FLUSH_MS', 2, 0, 60_000),
    consumerRebalanceTimeoutMs,
    clickhouseRequestTimeoutMs,
    databaseQueryTimeoutMs: int('DATABASE_QUERY_TIMEOUT_MS', 30_000, 100, 3_600_000),
    producerPublishTimeoutMs: int('PRODUCER_PUBLISH_TIMEOUT_MS', 30_000, 100, 3_600_000),
    httpPort: env.HTTP_PORT === undefined || env.HTTP_PORT.trim() === '' ? null : int('HTTP_PORT', 0, 0, 65535, `per command: ${Object.entries(DEFAULT_HTTP_PORTS).map(([c, p]) => `${c} ${p}`).join(', ')}; 0 turns it off`),
    httpHost: httpHost.replace(/^\[(.*)\]$/, '$1'),
    retryMaxDelayMs: int('RETRY_MAX_DELAY_MS', 30_000, 100, 600_000),
  };
}

/** Every secret of a config, for redaction of free text: passwords set alone and inside URLs. */
export function configSecrets(config: Config): string[] {
  const out: string[] = [];
  for (const url of [config.databaseUrl, config.clickhouseUrl]) {
    try {
      const raw = new URL(url).password;
      const pw = decodeURIComponent(raw);
      if (pw) out.push(pw);
      if (raw && raw !== pw) out.push(raw); // as it may appear in a message, still %-encoded
    } catch {
      /* validated already */
    }
  }
  if (config.clickhousePassword) out.push(config.clickhousePassword);
  if (config.kafkaSasl) out.push(config.kafkaSasl.password);
  return out;
}

/** The PostgreSQL address for messages: host:port/db, no credentials. */
export function pgAddress(databaseUrl: string): string {
  const u = new URL(databaseUrl);
  return `${u.hostname}:${u.port || '5432'}${u.pathname}`;
}
