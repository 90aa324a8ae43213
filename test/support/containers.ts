/**
 * Test services in Docker, for machines that have a Docker engine but no running services.
 * Not exercised by our CI (no Docker engine there); kept simple: the containers publish the
 * standard ports, so every address is the same as the native stack's and docker-compose.yml's.
 */
import { GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import type { ServiceAddresses } from './probe.js';

export async function startContainers(): Promise<{ addresses: ServiceAddresses; stop: () => Promise<void> }> {
  const started: StartedTestContainer[] = [];
  const postgres = new GenericContainer('postgres:17')
    .withEnvironment({ POSTGRES_PASSWORD: 'postgres' })
    .withExposedPorts({ container: 5432, host: 5432 })
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2));
  const kafka = new GenericContainer('apache/kafka:4.1.1')
    .withEnvironment({
      KAFKA_NODE_ID: '1',
      KAFKA_PROCESS_ROLES: 'broker,controller',
      KAFKA_LISTENERS: 'PLAINTEXT://:9092,CONTROLLER://:9093',
      KAFKA_ADVERTISED_LISTENERS: 'PLAINTEXT://127.0.0.1:9092',
      KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
      KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:9093',
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
      KAFKA_NUM_PARTITIONS: '3',
    })
    .withExposedPorts({ container: 9092, host: 9092 })
    .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/));
  const clickhouse = new GenericContainer('clickhouse/clickhouse-server:25.8')
    .withEnvironment({ CLICKHOUSE_SKIP_USER_SETUP: '1' })
    .withExposedPorts({ container: 8123, host: 8123 })
    .withWaitStrategy(Wait.forHttp('/ping', 8123));
  try {
    for (const c of [postgres, kafka, clickhouse]) started.push(await c.start());
  } catch (err) {
    await Promise.all(started.map((c) => c.stop()));
    throw err;
  }
  return {
    addresses: {
      databaseUrl: 'postgres://postgres:postgres@127.0.0.1:5432/postgres',
      kafkaBrokers: '127.0.0.1:9092',
      clickhouseUrl: 'http://127.0.0.1:8123',
    },
    stop: async () => {
      await Promise.all(started.map((c) => c.stop()));
    },
  };
}
