/**
 * Machinery of the fault-injection suite (`npm run test:faults`): the real CLI as supervised child
 * processes, a continuous insert load, SIGKILL at random moments, and the read-outs of a scenario
 * (`streamer status --json` until drained, `streamer verify --json`, a merge-proof count of every
 * insert that reached ClickHouse).
 *
 * Sizes come from FAULTS_* variables (see `settings`); FAULTS_PROFILE=ci picks the reduced defaults
 * meant for CI. Every random choice comes from FAULTS_SEED (printed), so a run can be repeated.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, statSync, watch, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import type { Config } from '../../src/config/config.js';
import { BIN, ROOT, runCli } from '../support/cli.js';
import { waitFor } from '../support/wait.js';

// ------------------------------------------------------------------------------ settings

const CI_PROFILE = process.env.FAULTS_PROFILE === 'ci';

function envInt(key: string, full: number, ci: number): number {
  const raw = process.env[key];
  const def = CI_PROFILE ? ci : full;
  if (raw === undefined || raw.trim() === '') return def;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${key}=${JSON.stringify(raw)}: expected a whole number ≥ 0 (default ${def})`);
  return n;
}

/** The sizes of a run. Full defaults first, then the FAULTS_PROFILE=ci ones. */
export const settings = {
  profile: CI_PROFILE ? 'ci' : 'full',
  /** FAULTS_KILLS (20 / 20): SIGKILLs of the producer, and of the consumer, each in its scenario. */
  kills: envInt('FAULTS_KILLS', 20, 20),
  /** FAULTS_RUN_KILLS (10 / 4): SIGKILLs of `streamer run` (producer and consumer in one process). */
  runKills: envInt('FAULTS_RUN_KILLS', 10, 4),
  /** FAULTS_OUTAGES (2 / 1): stops of Kafka, of ClickHouse, restarts of PostgreSQL, each in its scenario. */
  outages: envInt('FAULTS_OUTAGES', 2, 1),
  /** FAULTS_OUTAGE_MS (5000 / 3000): how long Kafka / ClickHouse stay down. */
  outageMs: envInt('FAULTS_OUTAGE_MS', 5000, 3000),
  /** FAULTS_CONCURRENT_MS (30000 / 12000): how long two producers and two consumers run under load. */
  concurrentMs: envInt('FAULTS_CONCURRENT_MS', 30_000, 12_000),
  /** FAULTS_REBALANCES (4 / 2): graceful restarts of one of the two consumers / producers meanwhile. */
  rebalances: envInt('FAULTS_REBALANCES', 4, 2),
  /** FAULTS_MAX_UP_MS (2000 / 1500): a process is killed 0…this many ms after it is ready. */
  maxUpMs: envInt('FAULTS_MAX_UP_MS', 2000, 1500),
  /** FAULTS_REFUSALS (10 / 3): times ClickHouse refuses a batch and the consumer gets SIGTERM meanwhile. */
  refusals: envInt('FAULTS_REFUSALS', 10, 3),
  /** FAULTS_HANGS (6 / 2): times ClickHouse (and, in its own scenario, Kafka) is frozen (SIGSTOP) longer than the request timeout (the publish deadline). */
  hangs: envInt('FAULTS_HANGS', 6, 2),
  /** FAULTS_HANG_MS (4000 / 3000): how long each freeze lasts (CLICKHOUSE_REQUEST_TIMEOUT_MS is 1500 there, PRODUCER_PUBLISH_TIMEOUT_MS 1000). */
  hangMs: envInt('FAULTS_HANG_MS', 4000, 3000),
  /** FAULTS_RECREATIONS (3 / 2): times the topic is deleted and created again under `streamer run`. */
  recreations: envInt('FAULTS_RECREATIONS', 3, 2),
  /** FAULTS_DEAD_ROWS (30000 / 30000): rows of the bulk INSERT no ClickHouse column can hold (all dead letters). */
  deadRows: envInt('FAULTS_DEAD_ROWS', 30_000, 30_000),
  /** FAULTS_ROWS (200000 / 60000): the most rows one scenario inserts (the load stops there). */
  rows: envInt('FAULTS_ROWS', 200_000, 60_000),
  /** FAULTS_LOADERS (2): connections inserting side by side (ids then commit out of order). */
  loaders: Math.max(1, envInt('FAULTS_LOADERS', 2, 2)),
  /** FAULTS_INSERT_ROWS (5): rows per INSERT statement. */
  insertRows: Math.max(1, envInt('FAULTS_INSERT_ROWS', 5, 5)),
  /** FAULTS_INSERT_EVERY_MS (5): pause of each loader between two INSERTs. */
  insertEveryMs: envInt('FAULTS_INSERT_EVERY_MS', 5, 5),
  /** FAULTS_DRAIN_MS (180000): how long the streams may take to drain after the load stops. */
  drainMs: envInt('FAULTS_DRAIN_MS', 180_000, 180_000),
  /**
   * FAULTS_FENCE (1): after a consumer is killed, remove its dead member from the group (a
   * LeaveGroup on its behalf, what an orchestrator with static membership achieves). Without it the
   * group waits for the member's 30 s session timeout before anyone consumes again — correct, just
   * 30 s per kill. FAULTS_FENCE=0 runs that path.
   */
  fence: envInt('FAULTS_FENCE', 1, 1) !== 0,
  /**
   * FAULTS_AUDIT_FAIL (1): fail a scenario when the audit view saw a duplicate insert, even if
   * ReplacingMergeTree merged it away before `verify` ran. 0: report it in the table only.
   */
  auditFails: envInt('FAULTS_AUDIT_FAIL', 1, 1) !== 0,
  /** FAULTS_SEED: seeds every random choice (default: time-based, printed). */
  seed: envInt('FAULTS_SEED', Date.now() % 2 ** 31, Date.now() % 2 ** 31),
  /** FAULTS_LOG_DIR: where the children's logs go (kept after the run). */
  logDir: process.env.FAULTS_LOG_DIR ?? path.join(os.tmpdir(), `streamer-faults-${new Date().toISOString().replace(/[:.]/g, '-')}`),
};

/** A small seeded PRNG (mulberry32): the same FAULTS_SEED gives the same kill moments. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ------------------------------------------------------------------------ child processes

export type Role = 'producer' | 'consumer' | 'run';

/** The log line that says a process is doing its job (see src/producer.ts, src/consumer.ts). */
const READY: Record<Role, string> = {
  producer: '"msg":"producer started"',
  consumer: '"msg":"joined the consumer group"',
  // `run` starts its consumer first (joined), then its producer.
  run: '"msg":"producer started"',
};

interface Spawned {
  child: ChildProcess;
  pid: number;
  /** Where this instance's lines start in the shared log file. */
  logOffset: number;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Set before we signal it, so its exit is not taken for a crash. */
  ours: boolean;
}

/**
 * One CLI role (`streamer producer`, `consumer` or `run`) as a supervisor would run it: restarted
 * whenever it exits without us having signalled it — and every such exit counted as a crash, which
 * the scenario reports and fails on. Output (JSON log lines) goes straight to a file, never through
 * a pipe, so a child never blocks on a full pipe while the test process is busy.
 */
export class Service {
  crashes = 0;
  kills = 0;
  starts = 0;
  private current: Spawned | null = null;
  private stopped = false;
  private readonly crashNotes: string[] = [];

  constructor(
    readonly name: string,
    readonly role: Role,
    private readonly env: Record<string, string>,
    readonly logFile: string,
  ) {}

  start(): void {
    if (this.stopped) return;
    const fd = openSync(this.logFile, 'a');
    const logOffset = statSync(this.logFile).size;
    writeSync(fd, `=== ${new Date().toISOString()} start #${this.starts + 1} of ${this.name} (streamer ${this.role})\n`);
    const child = spawn(process.execPath, [BIN, this.role], { cwd: ROOT, env: { ...process.env, ...this.env, CI: 'true' }, stdio: ['ignore', fd, fd] });
    closeSync(fd); // the child holds its own copy
    this.starts++;
    const spawned: Spawned = {
      child,
      pid: child.pid ?? -1,
      logOffset,
      ours: false,
      exit: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))),
    };
    this.current = spawned;
    void spawned.exit.then(({ code, signal }) => {
      if (spawned.ours || this.stopped) return;
      this.crashes++;
      const note = `${this.name} pid ${spawned.pid} exited by itself (code ${code}, signal ${signal}); restarted — see ${this.logFile}`;
      this.crashNotes.push(note);
      console.warn(`[faults] ${note}`);
      if (this.current === spawned) setTimeout(() => this.start(), 500);
    });
  }

  get notes(): readonly string[] {
    return this.crashNotes;
  }

  /** This instance's log since it started. */
  output(): string {
    if (!this.current) return '';
    return readFileSync(this.logFile).subarray(this.current.logOffset).toString('utf8');
  }

  /** Resolves once the current instance logged its ready line. */
  async ready(timeoutMs = 90_000): Promise<void> {
    const me = this.current;
    await waitFor(`${this.name} to be ready`, () => (this.current !== me || this.output().includes(READY[this.role]) ? true : undefined), timeoutMs, 50);
  }

  /** SIGKILL the current instance and wait until it is gone. */
  async kill9(): Promise<void> {
    const c = this.current;
    if (!c) return;
    c.ours = true;
    c.child.kill('SIGKILL');
    await c.exit;
    this.kills++;
    this.current = null;
  }

  /**
   * SIGKILL the current instance the moment its log shows a line matching `line` — e.g. the
   * consumer's debug line "batch stored", written after the ClickHouse insert and before the offset
   * commit: the kill then lands between the two (when it is faster than the commit round trip).
   * Falls back to a plain kill after `timeoutMs`. Resolves whether the line was seen.
   */
  async kill9OnLine(line: RegExp, timeoutMs = 5000): Promise<boolean> {
    const c = this.current;
    if (!c) return false;
    const fd = openSync(this.logFile, 'r');
    let pos = c.logOffset;
    let tail = '';
    const seen = await new Promise<boolean>((resolve) => {
      let finished = false;
      const finish = (hit: boolean) => {
        if (finished) return;
        finished = true;
        c.ours = true;
        c.child.kill('SIGKILL');
        watcher.close();
        clearTimeout(timer);
        resolve(hit);
      };
      const check = () => {
        if (finished) return;
        const size = fstatSync(fd).size;
        if (size <= pos) return;
        const buf = Buffer.alloc(size - pos);
        readSync(fd, buf, 0, buf.length, pos);
        pos = size;
        const lines = (tail + buf.toString('utf8')).split('\n');
        tail = lines.pop() ?? '';
        if (lines.some((l) => line.test(l))) finish(true);
      };
      const watcher = watch(this.logFile, check);
      const timer = setTimeout(() => finish(false), timeoutMs);
      check();
    });
    closeSync(fd);
    await c.exit;
    this.kills++;
    this.current = null;
    return seen;
  }

  /** SIGTERM (graceful: the batch in flight finishes), SIGKILL after `graceMs`. */
  async stop(graceMs = 20_000): Promise<void> {
    this.stopped = true;
    const c = this.current;
    if (!c) return;
    c.ours = true;
    c.child.kill('SIGTERM');
    const timer = setTimeout(() => c.child.kill('SIGKILL'), graceMs);
    await c.exit;
    clearTimeout(timer);
    this.current = null;
  }

  /** Graceful stop and start again (a deploy / rebalance, not a fault). */
  async restart(): Promise<void> {
    const c = this.current;
    if (c) {
      c.ours = true;
      c.child.kill('SIGTERM');
      await c.exit;
    }
    this.current = null;
    this.start();
  }
}

/** The folder of this run's logs, made on first use. */
export function logDir(): string {
  mkdirSync(settings.logDir, { recursive: true });
  return settings.logDir;
}

// ------------------------------------------------------------------------------- Kafka group

const kafkaOf = (config: Config) => new Kafka({ brokers: config.kafkaBrokers, logLevel: logLevel.NOTHING, clientId: 'faults' });

interface GroupBroker {
  leaveGroup(req: { groupId: string; memberId: string }): Promise<unknown>;
}
interface InternalCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  findGroupCoordinator(req: { groupId: string }): Promise<GroupBroker>;
}

/**
 * Removes every member of the group (all of them dead: call it only when no consumer of the group
 * is running) with a LeaveGroup on their behalf, so the next consumer gets the partitions at once
 * instead of after the dead members' 30 s session timeout. kafkajs's admin has no "remove member"
 * for dynamic members, so this reaches its cluster factory (kafkajs 2.2.4's private symbol).
 * Returns how many members were removed.
 */
export async function fenceDeadMembers(config: Config): Promise<number> {
  const kafka = kafkaOf(config);
  const admin = kafka.admin();
  await admin.connect();
  let members: string[];
  try {
    const { groups } = await admin.describeGroups([config.kafkaGroupId]);
    members = (groups[0]?.members ?? []).map((m) => m.memberId);
  } finally {
    await admin.disconnect();
  }
  if (members.length === 0) return 0;
  const sym = Object.getOwnPropertySymbols(kafka).find((s) => s.description === 'private:Kafka:createCluster');
  if (!sym) throw new Error('kafkajs internals changed: no createCluster symbol (run with FAULTS_FENCE=0)');
  const cluster = (kafka as unknown as Record<symbol, (o: object) => InternalCluster>)[sym]!({});
  await cluster.connect();
  try {
    const coordinator = await cluster.findGroupCoordinator({ groupId: config.kafkaGroupId });
    for (const memberId of members) {
      // UNKNOWN_MEMBER_ID: it expired meanwhile — what we wanted anyway.
      await coordinator.leaveGroup({ groupId: config.kafkaGroupId, memberId }).catch(() => {});
    }
  } finally {
    await cluster.disconnect();
  }
  return members.length;
}

/** Messages in the topic (Σ high − low); more than the rows when the producer re-published some. */
export async function topicMessages(config: Config): Promise<number> {
  const admin = kafkaOf(config).admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(config.kafkaTopic);
    return offsets.reduce((sum, p) => sum + (Number(p.high) - Number(p.low)), 0);
  } finally {
    await admin.disconnect();
  }
}

// ------------------------------------------------------------------------------------ load

export interface Load {
  /** Rows whose INSERT was acknowledged (an INSERT cut by a restart may or may not have landed). */
  readonly inserted: number;
  readonly errors: number;
  stop(): Promise<void>;
}

/** The second table of the two-tables scenario: a composite key (test/faults/faults.test.ts). */
export const ORDER_LINES_DDL = `CREATE SCHEMA shop;
  CREATE SEQUENCE shop.order_ids;
  CREATE TABLE shop.order_lines (order_id bigint, line int, sku text NOT NULL, qty int NOT NULL, price numeric(12,2), PRIMARY KEY (order_id, line))`;

/**
 * The statements of the load, per table: insert `$2` rows; change `$2` rows of the load (not the
 * rows a scenario made itself); delete one. A random starting id spreads the changes over the
 * table; two loaders may deadlock on them now and then (counted as errors, retried).
 */
const LOAD_SQL = {
  'public.user_login': {
    insert: `INSERT INTO user_login (username, event_type, event_time)
             SELECT 'load' || $1::text || '-' || g, (ARRAY['login','logout','purchase','register'])[1 + g % 4], localtimestamp
               FROM generate_series(1, $2::int) g`,
    update: `UPDATE user_login SET event_type = 'changed-' || $1::text, event_time = localtimestamp
              WHERE id IN (SELECT id FROM user_login WHERE id >= (SELECT floor(random() * max(id))::int FROM user_login) AND username LIKE 'load%' ORDER BY id LIMIT $2)`,
    delete: `DELETE FROM user_login WHERE id IN (SELECT id FROM user_login WHERE id >= (SELECT floor(random() * max(id))::int FROM user_login) AND username LIKE 'load%' ORDER BY id LIMIT 1) AND $1::text IS NOT NULL AND $2::int > 0`,
  },
  'shop.order_lines': {
    insert: `INSERT INTO shop.order_lines (order_id, line, sku, qty, price)
             SELECT o.id, g, 'sku-' || $1::text, g, g * 1.25 FROM (SELECT nextval('shop.order_ids') AS id) o, generate_series(1, $2::int) g`,
    update: `UPDATE shop.order_lines SET qty = qty + 1, sku = 'changed-' || $1::text
              WHERE (order_id, line) IN (SELECT order_id, line FROM shop.order_lines TABLESAMPLE SYSTEM (5) LIMIT $2)`,
    delete: `DELETE FROM shop.order_lines WHERE (order_id, line) IN (SELECT order_id, line FROM shop.order_lines TABLESAMPLE SYSTEM (5) LIMIT 1) AND $1::text IS NOT NULL AND $2::int > 0`,
  },
} as const;

/**
 * `loaders` connections, each running a statement every `insertEveryMs` — 60 % inserts of
 * `insertRows` rows, 30 % updates of that many rows, 10 % deletes of one — on each of `tables`
 * in turn, until stopped or `rows` rows were inserted. A connection that fails (PostgreSQL
 * restarting) is replaced after 200 ms; the load never stops on its own before `rows`.
 */
export function startLoad(config: Config, opts = settings, tables: Array<keyof typeof LOAD_SQL> = ['public.user_login']): Load {
  let inserted = 0;
  let errors = 0;
  let stopping = false;
  const pick = rng(opts.seed + 7919);
  const loop = async (n: number) => {
    let client: pg.Client | null = null;
    let seq = 0;
    while (!stopping && inserted < opts.rows) {
      try {
        if (!client) {
          const c = new pg.Client({ connectionString: config.databaseUrl, connectionTimeoutMillis: 3000 });
          c.on('error', () => {}); // a restart kills idle connections: the next query notices
          client = c;
          await c.connect();
        }
        const sql = LOAD_SQL[tables[seq % tables.length] as keyof typeof LOAD_SQL];
        const r = pick();
        const op = r < 0.6 ? 'insert' : r < 0.9 ? 'update' : 'delete';
        await client.query(sql[op], [`${n}-${seq++}`, opts.insertRows]);
        if (op === 'insert') inserted += opts.insertRows;
        if (opts.insertEveryMs > 0) await sleep(opts.insertEveryMs);
      } catch {
        errors++;
        await client?.end().catch(() => {});
        client = null;
        await sleep(200);
      }
    }
    await client?.end().catch(() => {});
  };
  const loops = Array.from({ length: opts.loaders }, (_, i) => loop(i));
  return {
    get inserted() {
      return inserted;
    },
    get errors() {
      return errors;
    },
    async stop() {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

// ------------------------------------------------------------------------------ ClickHouse

async function ch<T>(config: Config, query: string): Promise<T[]> {
  const client = createClient({ url: config.clickhouseUrl, log: { level: ClickHouseLogLevel.OFF } });
  try {
    if (/^\s*(SELECT|SHOW)/i.test(query)) return await (await client.query({ query, format: 'JSONEachRow' })).json<T>();
    await client.command({ query });
    return [];
  } finally {
    await client.close();
  }
}

/**
 * A plain MergeTree copy of every insert into a replicated table (a materialized view). Unlike the
 * ReplacingMergeTree, it never collapses anything: `count() − uniqExact(key, _version)` here counts
 * every version that ever reached ClickHouse twice, merged away or not. (SYSTEM STOP MERGES would
 * keep duplicates visible too, but a scenario makes hundreds of parts: at 300 ClickHouse refuses
 * inserts with TOO_MANY_PARTS and the consumer would retry forever.)
 */
export async function createAudit(config: Config, table = 'user_login', key = 'toString(id)'): Promise<void> {
  const db = config.clickhouseDatabase; // validated by loadConfig: letters, digits, '_'
  await ch(
    config,
    `CREATE MATERIALIZED VIEW ${db}.${table}_audit ENGINE = MergeTree ORDER BY (k, _version) AS SELECT ${key} AS k, _version, _kafka_partition, _kafka_offset, _ingested_at FROM ${db}.${table}`,
  );
}

export interface Audit {
  /** Rows ever inserted. */
  inserts: number;
  /** Inserts of a (key, version) beyond its first. */
  duplicates: number;
  /** A few keys with a version inserted more than once, with their copies. */
  examples: Array<{ id: string; copies: string; where: string[] }>;
}

export async function readAudit(config: Config, tables = ['user_login']): Promise<Audit> {
  const db = config.clickhouseDatabase;
  const out: Audit = { inserts: 0, duplicates: 0, examples: [] };
  for (const table of tables) {
    const [t] = await ch<{ n: string; u: string }>(config, `SELECT count() AS n, uniqExact(k, _version) AS u FROM ${db}.${table}_audit`);
    const examples = await ch<{ id: string; copies: string; where: string[] }>(
      config,
      `SELECT k AS id, count() AS copies, groupArray(concat('v', toString(_version), ' ', toString(_kafka_partition), ':', toString(_kafka_offset), '@', toString(_ingested_at))) AS where
         FROM ${db}.${table}_audit GROUP BY k, _version HAVING copies > 1 ORDER BY k LIMIT 10`,
    );
    out.inserts += Number(t?.n ?? 0);
    out.duplicates += Number(t?.n ?? 0) - Number(t?.u ?? 0);
    out.examples.push(...examples);
  }
  return out;
}

// -------------------------------------------------------------------------------- the CLI

export interface StatusJson {
  postgres: { pending: number; failed: number; total: number };
  kafka: { topicExists: boolean; totalLag: number };
  clickhouse: { rows: number };
}

/** Polls `streamer status --json` until nothing is pending or failed and the lag is 0, twice in a row. */
export async function waitDrained(env: Record<string, string>, timeoutMs = settings.drainMs): Promise<StatusJson> {
  const deadline = Date.now() + timeoutMs;
  let last: StatusJson | string = 'no answer yet';
  let streak = 0;
  for (;;) {
    const r = await runCli(['status', '--json'], env, 60_000).catch((err: Error) => ({ code: -1, stdout: '', stderr: err.message }));
    if (r.code === 0) {
      const s = JSON.parse(r.stdout) as StatusJson;
      last = s;
      const drained = s.kafka.topicExists && s.postgres.pending === 0 && s.postgres.failed === 0 && s.kafka.totalLag === 0;
      streak = drained ? streak + 1 : 0;
      if (streak >= 2) return s;
    } else {
      last = r.stderr.trim();
      streak = 0;
    }
    if (Date.now() > deadline) throw new Error(`not drained after ${timeoutMs} ms; last status: ${typeof last === 'string' ? last : JSON.stringify(last)}`);
    await sleep(1000);
  }
}

export interface VerifyJson {
  postgresRows: number;
  clickhouseRows: number;
  missing: number;
  stale: number;
  deletedButPresent: number;
  deadLettered: number;
  notYetSent: number;
  duplicated: number;
  missingExamples: string[];
  duplicatedExamples: string[];
  ok: boolean;
}

export async function verifyJson(env: Record<string, string>): Promise<{ code: number | null; report: VerifyJson | null; stderr: string }> {
  const r = await runCli(['verify', '--json'], env, 120_000);
  let report: VerifyJson | null = null;
  try {
    report = JSON.parse(r.stdout) as VerifyJson;
  } catch {
    /* reported through code and stderr */
  }
  return { code: r.code, report, stderr: r.stderr };
}

// --------------------------------------------------------------------------------- logs

/**
 * What the children's debug logs say happened: ids the consumers skipped because ClickHouse had them
 * already (redeliveries and re-publishes made harmless), and rows the producers published.
 */
export function logTotals(files: string[]): { skipped: number; published: number } {
  let skipped = 0;
  let published = 0;
  for (const { line } of logLines(files)) {
    if (!line.startsWith('{')) continue;
    if (line.includes('"msg":"batch stored"')) skipped += Number(/"duplicates":(\d+)/.exec(line)?.[1] ?? 0);
    else if (line.includes('"msg":"drained"')) published += Number(/"published":(\d+)/.exec(line)?.[1] ?? 0);
  }
  return { skipped, published };
}

/** Every line of the given log files (a file not written yet is skipped). */
function* logLines(files: string[]): Generator<{ file: string; line: string }> {
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) yield { file, line };
  }
}

/** Lines of the logs that mention one of `ids` as a key or an id field (for digging into a finding). */
export function grepIds(files: string[], ids: Array<number | string>, max = 40): string[] {
  const patterns = ids.map((id) => new RegExp(`"(?:id|key)":"?${id}"?[,}]`));
  const out: string[] = [];
  for (const { file, line } of logLines(files)) {
    if (patterns.some((p) => p.test(line))) out.push(`${path.basename(file)}: ${line}`);
    if (out.length >= max) break;
  }
  return out;
}

// ------------------------------------------------------------------------------- servers

const execFileAsync = promisify(execFile);

/**
 * test/support/outage.ts's startService, without blocking the event loop: the load and the
 * children's supervision go on while `scripts/stack.sh up` waits for the server (Kafka: ~5 s).
 */
export async function startServiceAsync(): Promise<void> {
  await execFileAsync('bash', [path.join(ROOT, 'scripts/stack.sh'), 'up'], { env: process.env, maxBuffer: 16 * 1024 * 1024 });
}

// -------------------------------------------------------------------------------- report

export interface ScenarioResult {
  scenario: string;
  rows: number;
  kills: number;
  aimed: number;
  outages: number;
  crashes: number;
  topicMessages: number;
  skipped: number;
  lost: number;
  duplicated: number;
  auditDuplicates: number;
  seconds: number;
  ok: boolean;
  note: string;
}

export function formatTable(results: ScenarioResult[]): string {
  const head = ['scenario', 'rows', 'kills (aimed)', 'outages', 'crashes', 'topic msgs', 'skipped', 'lost', 'duplicated', 'dup inserts', 'seconds', 'verify'];
  const rows = results.map((r) => [
    r.scenario,
    String(r.rows),
    r.aimed > 0 ? `${r.kills} (${r.aimed})` : String(r.kills),
    String(r.outages),
    String(r.crashes),
    String(r.topicMessages),
    String(r.skipped),
    String(r.lost),
    String(r.duplicated),
    String(r.auditDuplicates),
    r.seconds.toFixed(0),
    r.ok ? 'ok' : `FAIL ${r.note}`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}
