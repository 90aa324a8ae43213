// Readiness probe for scripts/stack.sh: a real request, not just an open port.
// `node probe.mjs kafka [host:port]` exits 0 when a broker (default 127.0.0.1:9092) answers a
// metadata request.
import { Kafka, logLevel } from 'kafkajs';

const what = process.argv[2];
if (what !== 'kafka') {
  console.error(`usage: node probe.mjs kafka`);
  process.exit(2);
}
const kafka = new Kafka({
  clientId: 'stack-probe',
  brokers: [process.argv[3] ?? '127.0.0.1:9092'],
  logLevel: logLevel.NOTHING,
  connectionTimeout: 1000,
  retry: { retries: 0 },
});
const admin = kafka.admin();
try {
  await admin.connect();
  const cluster = await admin.describeCluster();
  if (cluster.brokers.length === 0) throw new Error('no brokers');
  await admin.disconnect();
  process.exit(0);
} catch {
  process.exit(1);
}
