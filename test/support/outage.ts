/**
 * Stops and restarts a server of the native local stack, for the disruptive tests. Only a server
 * the stack started can be stopped (its pid file says so); anything else is an error, never a
 * silent pass.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './cli.js';
import { waitFor } from './wait.js';

// The stack's folder: STACK_DIR when a run uses a stack of its own (scripts/stack.sh honours it).
const STACK_DIR = process.env.STACK_DIR ?? path.join(ROOT, '.stack');
const PID_FILES = {
  kafka: 'kafka/kafka.pid',
  clickhouse: 'clickhouse/clickhouse.pid',
} as const;

export type StoppableService = keyof typeof PID_FILES;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function stopService(service: StoppableService): Promise<void> {
  const file = path.join(STACK_DIR, PID_FILES[service]);
  if (!existsSync(file)) {
    throw new Error(`${service} was not started by the native stack (${file} is missing): this test stops and restarts it, so run it against "npm run stack:up"`);
  }
  const pid = Number(readFileSync(file, 'utf8').trim());
  process.kill(pid, 'SIGTERM');
  await waitFor(`${service} (pid ${pid}) to exit`, () => (alive(pid) ? undefined : true), 60_000, 200);
}

export function startService(): void {
  execFileSync('bash', [path.join(ROOT, 'scripts/stack.sh'), 'up'], { stdio: 'ignore' });
}

/** PostgreSQL restart through pg_ctl (the stack's own cluster). */
export function restartPostgres(): void {
  const started = path.join(STACK_DIR, 'postgres/started');
  if (!existsSync(started)) throw new Error('PostgreSQL was not started by the native stack: this test restarts it');
  const data = readFileSync(started, 'utf8').trim();
  const bin = execFileSync('bash', ['-c', 'ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1']).toString().trim();
  execFileSync('su', ['postgres', '-s', '/bin/sh', '-c', `'${bin}/pg_ctl' -D '${data}' -m fast -w restart`], { stdio: 'ignore' });
}

function stackPid(service: StoppableService): number {
  const file = path.join(STACK_DIR, PID_FILES[service]);
  if (!existsSync(file)) {
    throw new Error(`${service} was not started by the native stack (${file} is missing): this test freezes it, so run it against "npm run stack:up"`);
  }
  return Number(readFileSync(file, 'utf8').trim());
}

/**
 * SIGSTOP: the server stops answering but keeps every connection open — a hung server, not a
 * stopped one (no reset, no refusal; requests wait for their timeouts). `resume` is SIGCONT.
 */
export function freezeService(service: StoppableService): { resume(): void } {
  const pid = stackPid(service);
  process.kill(pid, 'SIGSTOP');
  let resumed = false;
  return {
    resume() {
      if (resumed) return;
      resumed = true;
      process.kill(pid, 'SIGCONT');
    },
  };
}
