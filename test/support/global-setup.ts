/**
 * Where the test services come from, in this order:
 *  1. services that already answer at DATABASE_URL / KAFKA_BROKERS / CLICKHOUSE_URL (defaults: the
 *     local stack's addresses);
 *  2. when none answers and a Docker engine is reachable, testcontainers starts them;
 *  3. otherwise the native stack (scripts/stack.sh up) is installed and started, and stopped at
 *     the end of the run if this run started it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { probeAll, type ServiceAddresses } from './probe.js';

declare module 'vitest' {
  export interface ProvidedContext {
    services: ServiceAddresses;
  }
}

const ROOT = path.resolve(import.meta.dirname, '../..');
const stack = (cmd: string) => execFileSync('bash', [path.join(ROOT, 'scripts/stack.sh'), cmd], { stdio: 'inherit' });

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const wanted: ServiceAddresses = {
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres:postgres@127.0.0.1:5432/postgres',
    kafkaBrokers: process.env.KAFKA_BROKERS ?? '127.0.0.1:9092',
    clickhouseUrl: process.env.CLICKHOUSE_URL ?? 'http://127.0.0.1:8123',
  };
  let teardown = async () => {};
  if (process.env.STREAMER_NO_SERVICES) {
    // `npm run test:unit`: pure logic only, no service is looked for or started.
    project.provide('services', wanted);
    return teardown;
  }
  const missing = await probeAll(wanted);
  if (missing.length === 3 && dockerReachable()) {
    const { startContainers } = await import('./containers.js');
    const started = await startContainers();
    Object.assign(wanted, started.addresses);
    teardown = started.stop;
  } else if (missing.length > 0) {
    const usesDefaults = !process.env.DATABASE_URL && !process.env.KAFKA_BROKERS && !process.env.CLICKHOUSE_URL;
    if (!usesDefaults) {
      throw new Error(`these test services do not answer: ${missing.join('; ')}`);
    }
    const wasUp = existsSync(path.join(process.env.STACK_DIR ?? path.join(ROOT, '.stack'), 'kafka/kafka.pid'));
    console.log(`[tests] not answering: ${missing.join('; ')} — bringing up the native stack`);
    stack('up');
    const still = await probeAll(wanted);
    if (still.length > 0) throw new Error(`the native stack is up but these do not answer: ${still.join('; ')}`);
    if (!wasUp && !process.env.STREAMER_KEEP_STACK) teardown = async () => {
      stack('down');
    };
  }
  project.provide('services', wanted);
  return teardown;
}

function dockerReachable(): boolean {
  if (process.env.DOCKER_HOST) return true;
  if (!existsSync('/var/run/docker.sock')) return false;
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}
