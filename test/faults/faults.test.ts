// Fault injection under load (`npm run test:faults`): the REAL CLI processes (`streamer producer`,
// `consumer`, `run`) as children, rows streaming into PostgreSQL the whole time, and
//   - SIGKILL of the producer, of the consumer, of `streamer run`, at random moments, each time
//     restarted;
//   - Kafka stopped and started, ClickHouse stopped and started, PostgreSQL restarted;
//   - two producers and two consumers side by side, with rebalances.
// Each scenario has its own database, topic and ClickHouse database; it ends when the load has
// stopped and `streamer status --json` shows nothing pending and no lag, with `streamer verify`:
// every PostgreSQL row in ClickHouse exactly once. A merge-proof audit table (support.ts) also
// counts every duplicate insert that ever reached ClickHouse. The table at the end sums it up.
//
// Needs the native stack (it stops and restarts its servers): run it against a stack of its own
// (STACK_DIR, STACK_*_PORT and the three service URLs), never beside other suites.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { isolate, services, type Isolated } from '../support/isolation.js';
import { freezeService, restartPostgres, stopService, type StoppableService } from '../support/outage.js';
import { httpProxy, MEMORY_LIMIT_ERROR } from '../support/proxy.js';
import { testKafka } from '../support/clickhouse.js';
import { withPg } from '../support/pg.js';
import { waitFor } from '../support/wait.js';
import {
  createAudit,
  fenceDeadMembers,
  formatTable,
  grepIds,
  logDir,
  logTotals,
  readAudit,
  rng,
  Service,
  settings,
  sleep,
  startLoad,
  ORDER_LINES_DDL,
  startServiceAsync,
  topicMessages,
  verifyJson,
  waitDrained,
  type Role,
  type ScenarioResult,
} from './support.js';

const random = rng(settings.seed);
const results: ScenarioResult[] = [];
const suiteStarted = Date.now();

interface Ctx {
  iso: Isolated;
  /** Starts a supervised CLI process of this scenario (its log: <logDir>/<scenario>.<name>.log). */
  service(name: string, role: Role, env?: Record<string, string>): Service;
  /** Stops the insert load until `resumeLoad`. */
  pauseLoad(): Promise<void>;
  resumeLoad(): void;
}

interface Driven {
  kills: number;
  /** Kills that landed right after a ClickHouse insert, before the offset commit. */
  aimed?: number;
  outages: number;
  /** Rows the scenario made that no ClickHouse column can hold: dead-lettered, not lost. */
  deadLetters?: number;
}

/**
 * One scenario: fresh isolation, migrate, audit view, load on, `drive` (starts the processes and
 * does the damage, leaving a working set running), load off, drain, verify, report.
 */
async function scenario(name: string, drive: (ctx: Ctx) => Promise<Driven>, env: Record<string, string> = {}, opts: { twoTables?: boolean } = {}): Promise<void> {
  const started = Date.now();
  const run = Math.random().toString(36).slice(2, 8);
  let tablesEnv: Record<string, string> = {};
  if (opts.twoTables) {
    // user_login and a composite-key table, in one process; topics of their own.
    const file = path.join(logDir(), `${name}.tables.json`);
    writeFileSync(file, JSON.stringify({ tables: { 'public.user_login': { topic: `user_event_${run}` }, 'shop.order_lines': { topic: `order_lines_${run}` } } }));
    tablesEnv = { STREAMER_TABLES: 'public.user_login, shop.order_lines', STREAMER_CONFIG: file, KAFKA_TOPIC: '', KAFKA_DLQ_TOPIC: '' };
  }
  const iso = await isolate({ LOG_LEVEL: 'debug', SWEEP_INTERVAL_MS: '2000', RETRY_MAX_DELAY_MS: '2000', HTTP_PORT: '0', ...tablesEnv, ...env });
  const cliEnv = { ...iso.env, LOG_LEVEL: 'warn' };
  const services: Service[] = [];
  const load = { current: null as ReturnType<typeof startLoad> | null };
  const loadTables: Parameters<typeof startLoad>[2] = opts.twoTables ? ['public.user_login', 'shop.order_lines'] : ['public.user_login'];
  const auditTables = opts.twoTables ? ['user_login', 'order_lines'] : ['user_login'];
  try {
    if (opts.twoTables) await withPg(iso.config, (c) => c.query(ORDER_LINES_DDL));
    const m = await runCli(['migrate'], cliEnv);
    expect(m.code, m.stderr).toBe(0);
    await createAudit(iso.config);
    if (opts.twoTables) await createAudit(iso.config, 'order_lines', "concat(toString(order_id), ':', toString(line))");
    load.current = startLoad(iso.config, settings, loadTables);
    let inserted = 0; // by loads stopped before the current one
    const ctx: Ctx = {
      iso,
      service(svcName, role, extra = {}) {
        const s = new Service(svcName, role, { ...iso.env, ...extra }, path.join(logDir(), `${name}.${svcName}.log`));
        services.push(s);
        s.start();
        return s;
      },
      async pauseLoad() {
        await load.current?.stop();
        inserted += load.current?.inserted ?? 0;
      },
      resumeLoad() {
        load.current = startLoad(iso.config, { ...settings, rows: Math.max(0, settings.rows - inserted) }, loadTables);
      },
    };
    const driven = await drive(ctx);
    await load.current.stop();
    const status = await waitDrained(cliEnv);
    const v = await verifyJson(cliEnv);
    const audit = await readAudit(iso.config, auditTables);
    const logs = services.map((s) => s.logFile);
    const totals = logTotals([...new Set(logs)]);
    const crashes = services.reduce((n, s) => n + s.crashes, 0);
    const r = v.report;
    const problems: string[] = [];
    if (v.code !== 0 || !r) problems.push(`verify exit ${v.code}${v.stderr ? `: ${v.stderr.trim()}` : ''}`);
    if (r && r.postgresRows !== r.clickhouseRows + r.deadLettered) {
      problems.push(`PostgreSQL ${r.postgresRows} rows, ClickHouse ${r.clickhouseRows} + ${r.deadLettered} dead-lettered`);
    }
    if (r && r.deadLettered !== (driven.deadLetters ?? 0)) problems.push(`${r.deadLettered} rows dead-lettered, expected ${driven.deadLetters ?? 0}`);
    if (audit.duplicates > 0 && settings.auditFails) problems.push(`${audit.duplicates} duplicate inserts reached ClickHouse`);
    if (crashes > 0) problems.push(`${crashes} unexpected exits`);
    const result: ScenarioResult = {
      scenario: name,
      rows: status.postgres.total,
      kills: driven.kills,
      aimed: driven.aimed ?? 0,
      outages: driven.outages,
      crashes,
      topicMessages: await topicMessages(iso.config),
      skipped: totals.skipped,
      lost: r ? r.missing + r.stale + r.deletedButPresent : -1,
      duplicated: r?.duplicated ?? -1,
      auditDuplicates: audit.duplicates,
      seconds: (Date.now() - started) / 1000,
      ok: problems.length === 0,
      note: problems.join('; '),
    };
    results.push(result);
    if (!result.ok || audit.duplicates > 0) {
      // Everything needed to dig in: the ids, where they were read, what the logs say about them.
      const ids = [...(r?.missingExamples ?? []), ...(r?.duplicatedExamples ?? []), ...audit.examples.map((e) => e.id)];
      console.error(
        `[faults] ${name}: ${result.note || `${audit.duplicates} duplicate inserts reached ClickHouse (FAULTS_AUDIT_FAIL=0: reported only)`}\n` +
          `verify: ${JSON.stringify(r)}\n` +
          `duplicate inserts (id, copies, partition:offset@ingested_at): ${JSON.stringify(audit.examples)}\n` +
          `crashes: ${services.flatMap((s) => s.notes).join('\n') || 'none'}\n` +
          `log lines about those ids:\n${grepIds([...new Set(logs)], ids).join('\n')}\n` +
          `logs: ${logDir()}`,
      );
    }
    expect(result.note).toBe('');
    expect(result.rows).toBeGreaterThan(0);
  } finally {
    await load.current?.stop();
    await Promise.all(services.map((s) => s.stop()));
    await iso.cleanup().catch((err: unknown) => console.warn(`[faults] cleanup of ${name}: ${String(err)}`));
  }
}

/** The consumer's debug line after a ClickHouse insert that stored rows, before the offset commit. */
const STORED = /"inserted":[1-9]\d*,.*"msg":"batch stored"/;

/**
 * Kills `s` at a random moment: mostly 0…maxUpMs after it is ready, sometimes while it starts.
 * With `aim`, instead right after a batch is stored in ClickHouse and before its offsets are
 * committed (see Service.kill9OnLine). Returns whether an aimed kill saw its line.
 */
async function killAtRandomMoment(ctx: Ctx, s: Service, aim: boolean): Promise<boolean> {
  let hit = false;
  if (aim) {
    await s.ready();
    await sleep(random() * settings.maxUpMs * 0.5);
    hit = await s.kill9OnLine(STORED);
  } else {
    if (random() < 0.15) {
      await sleep(random() * 1000);
    } else {
      await s.ready();
      await sleep(random() * settings.maxUpMs);
    }
    await s.kill9();
  }
  // No consumer of the group is alive now: hand its partitions over at once (settings.fence).
  if (s.role !== 'producer' && settings.fence) await fenceDeadMembers(ctx.iso.config);
  if (random() < 0.5) await sleep(random() * 300);
  return hit;
}

/** `kills` SIGKILLs of `s`, restarted each time; every other one aimed when `s` consumes. */
async function killLoop(ctx: Ctx, s: Service, kills: number): Promise<Driven> {
  let aimed = 0;
  for (let i = 0; i < kills; i++) {
    if (await killAtRandomMoment(ctx, s, s.role !== 'producer' && i % 2 === 1)) aimed++;
    s.start();
  }
  await s.ready();
  return { kills: s.kills, aimed, outages: 0 };
}

/** Stops a server of the stack at a random moment, keeps it down `outageMs`, starts it again. */
async function outageLoop(service: StoppableService | 'postgres', services: Service[]): Promise<number> {
  await Promise.all(services.map((s) => s.ready()));
  for (let i = 0; i < settings.outages; i++) {
    await sleep(2000 + random() * 2000);
    if (service === 'postgres') {
      restartPostgres(); // pg_ctl restart -m fast: every connection is cut, the server is back at once
    } else {
      await stopService(service);
      await sleep(settings.outageMs);
      await startServiceAsync();
    }
  }
  await sleep(3000); // rows keep coming in after the last outage too
  return settings.outages;
}

/** `settings.hangs` times: `service` frozen (SIGSTOP) for `settings.hangMs`, then running again. */
async function freezeLoop(service: StoppableService, services: Service[]): Promise<number> {
  await Promise.all(services.map((s) => s.ready()));
  for (let i = 0; i < settings.hangs; i++) {
    await sleep(1000 + random() * 2000);
    const frozen = freezeService(service);
    try {
      await sleep(settings.hangMs);
    } finally {
      frozen.resume();
    }
  }
  await sleep(3000);
  return settings.hangs;
}

// One scenario alone: vitest's name filter, e.g. `npm run test:faults -- -t 'two producers'`.
// Generous per-scenario limits: real restarts and rejoins take seconds each.
const KILL_TIMEOUT = 600_000 + settings.kills * 30_000;

describe(`faults under load (profile ${settings.profile}, seed ${settings.seed})`, () => {
  afterAll(async () => {
    // After a failed outage scenario, leave the stack up for whatever runs next.
    await startServiceAsync().catch(() => {});
    if (results.length === 0) return;
    const table = formatTable(results);
    const summary =
      `streamer fault injection — profile ${settings.profile}, seed ${settings.seed}, ` +
      `${((Date.now() - suiteStarted) / 1000).toFixed(0)} s\n` +
      `sizes: ${JSON.stringify({ ...settings, logDir: undefined, only: undefined })}\n\n${table}\n\n` +
      `rows: in PostgreSQL at the end; kills (aimed): SIGKILLs (of them, right after a ClickHouse insert,\n` +
      `before the offset commit); topic msgs: messages in the (first) table's topic — every insert,\n` +
      `update and delete, and the at-least-once re-publishes after a kill or outage (topic-recreated:\n` +
      `the last topic's only);\n` +
      `skipped: ids the consumers dropped because\n` +
      `ClickHouse had them already; lost: streamer verify's missing + stale + deleted-but-present;\n` +
      `duplicated: verify's versions stored twice (the load: 60 % inserts, 30 % updates, 10 % deletes)\n` +
      `(dead-lettered rows, dead-letters-bulk, are neither: verify counts them apart);\n` +
      `dup inserts: versions inserted twice that ever reached ClickHouse (audit view, merge-proof).\n` +
      `logs: ${settings.logDir}\n`;
    writeFileSync(path.join(logDir(), 'summary.txt'), summary);
    console.log(`\n${summary}`);
  });

  it(`producer: SIGKILL ×${settings.kills} at random moments, restarted each time`, async () => {
    await scenario('producer-kill', async (ctx) => {
      const consumer = ctx.service('consumer', 'consumer');
      await consumer.ready();
      const producer = ctx.service('producer', 'producer');
      return killLoop(ctx, producer, settings.kills);
    });
  }, KILL_TIMEOUT);

  it(`consumer: SIGKILL ×${settings.kills} at random moments, restarted each time`, async () => {
    await scenario('consumer-kill', async (ctx) => {
      const producer = ctx.service('producer', 'producer');
      await producer.ready();
      const consumer = ctx.service('consumer', 'consumer');
      return killLoop(ctx, consumer, settings.kills);
    });
  }, KILL_TIMEOUT);

  it(`streamer run: SIGKILL ×${settings.runKills} at random moments, restarted each time`, async () => {
    await scenario('run-kill', async (ctx) => {
      const run = ctx.service('run', 'run');
      return killLoop(ctx, run, settings.runKills);
    });
  }, KILL_TIMEOUT);

  // Issue 11: two tables in one process — user_login and a composite-key table — both under the
  // mixed load, `streamer run` killed at random moments. Batches of 50 rows: the backlog of each
  // restart drains in many batches, so the kills also land in the batches after a pass's first —
  // in change-log mode (order_lines) one COPY that claims, deletes and reads (issue 14).
  it(`two tables: streamer run SIGKILL ×${settings.runKills} at random moments, restarted each time`, async () => {
    await scenario(
      'two-tables-run-kill',
      async (ctx) => {
        const run = ctx.service('run', 'run');
        return killLoop(ctx, run, settings.runKills);
      },
      { PRODUCER_BATCH_SIZE: '50' },
      { twoTables: true },
    );
  }, KILL_TIMEOUT);

  it(`Kafka stopped and started ×${settings.outages} (producer + consumer)`, async () => {
    await scenario('kafka-outage', async (ctx) => {
      const s = [ctx.service('producer', 'producer'), ctx.service('consumer', 'consumer')];
      return { kills: 0, outages: await outageLoop('kafka', s) };
    });
  }, 600_000);

  it(`ClickHouse stopped and started ×${settings.outages} (streamer run)`, async () => {
    await scenario('clickhouse-outage', async (ctx) => {
      const s = [ctx.service('run', 'run')];
      return { kills: 0, outages: await outageLoop('clickhouse', s) };
    });
  }, 600_000);

  it(`PostgreSQL restarted ×${settings.outages} (producer + consumer)`, async () => {
    await scenario('postgres-restart', async (ctx) => {
      const s = [ctx.service('producer', 'producer'), ctx.service('consumer', 'consumer')];
      return { kills: 0, outages: await outageLoop('postgres', s) };
    });
  }, 600_000);

  // Issue 9, finding 1: ClickHouse refuses a batch (a memory limit), SIGTERM arrives, ClickHouse
  // answers again — the consumer must not commit past the batch it gave up.
  it(`ClickHouse refuses a batch, then SIGTERM, ×${settings.refusals} (consumer behind a proxy)`, async () => {
    const proxy = await httpProxy(services().clickhouseUrl);
    try {
      await scenario('refused-then-sigterm', async (ctx) => {
        ctx.service('producer', 'producer');
        const consumer = ctx.service('consumer', 'consumer', { CLICKHOUSE_URL: proxy.url });
        for (let i = 0; i < settings.refusals; i++) {
          await consumer.ready();
          await sleep(random() * settings.maxUpMs);
          const before = proxy.seen.length;
          proxy.rule = (r) => (r.query.startsWith('INSERT') ? { kind: 'fail', status: 500, body: MEMORY_LIMIT_ERROR } : { kind: 'forward' });
          await waitFor('a refused insert', () => (proxy.seen.slice(before).some((r) => r.query.startsWith('INSERT')) ? true : undefined), 30_000, 20);
          const stopping = consumer.restart(); // SIGTERM now, started again once it exited
          await sleep(random() * 500); // ClickHouse answers again while it stops, or after
          proxy.rule = () => ({ kind: 'forward' });
          await stopping;
        }
        await consumer.ready();
        return { kills: settings.refusals, outages: settings.refusals };
      });
    } finally {
      await proxy.close();
    }
  }, 600_000);

  // Issue 9, finding 2: one bulk INSERT of rows no ClickHouse column can hold (all dead letters,
  // ~3 MB of them) in the middle of the load — the consumer must go on.
  it(`a bulk INSERT of ${settings.deadRows} rows dated 1850 (all dead letters) under load`, async () => {
    await scenario('dead-letters-bulk', async (ctx) => {
      const run = ctx.service('run', 'run');
      await run.ready();
      await sleep(2000);
      await withPg(ctx.iso.config, (c) =>
        c.query(`INSERT INTO user_login (username, event_type, event_time) SELECT 'dead-' || g, 'login', '1850-01-01 00:00:00' FROM generate_series(1, $1::int) g`, [settings.deadRows]),
      );
      await sleep(5000); // rows keep coming in after it
      return { kills: 0, outages: 0, deadLetters: settings.deadRows };
    });
  }, 600_000);

  // Issue 9, finding 3: ClickHouse hangs (SIGSTOP) longer than the client's request timeout, with
  // inserts in flight that it finishes once it runs again — never stored twice.
  it(`ClickHouse frozen ×${settings.hangs} for ${settings.hangMs} ms, longer than the request timeout (streamer run)`, async () => {
    await scenario(
      'clickhouse-hung',
      async (ctx) => ({ kills: 0, outages: await freezeLoop('clickhouse', [ctx.service('run', 'run')]) }),
      { CLICKHOUSE_REQUEST_TIMEOUT_MS: '1500' },
    );
  }, 600_000);

  // Issue 14: Kafka hangs (SIGSTOP) longer than the publish deadline, with produce requests in
  // flight — their batches roll back and are claimed again while those requests may still sit,
  // unanswered, in a socket. The producer reuses a request's buffer only once Kafka answered it
  // (kafkajs-patch.ts); one handed on too early would send another batch's bytes when Kafka runs
  // again: rows lost, or stored twice.
  it(`Kafka frozen ×${settings.hangs} for ${settings.hangMs} ms, longer than the publish deadline (streamer run)`, async () => {
    await scenario(
      'kafka-hung',
      async (ctx) => ({ kills: 0, outages: await freezeLoop('kafka', [ctx.service('run', 'run')]) }),
      // A third of the freeze: the second publish of a freeze, a full batch claimed meanwhile
      // (large requests, their buffers from the pool), is given up too.
      { PRODUCER_PUBLISH_TIMEOUT_MS: '1000' },
    );
  }, 600_000);

  // Issue 9, finding 5: the topic deleted and created again while `streamer run` runs (the load
  // paused and drained first: what an old topic still held would be gone with it) — the new topic's
  // offsets start again at 0, and every row of it must arrive.
  it(`the topic deleted and re-created ×${settings.recreations} under streamer run`, async () => {
    await scenario('topic-recreated', async (ctx) => {
      const run = ctx.service('run', 'run');
      await run.ready();
      const cliEnv = { ...ctx.iso.env, LOG_LEVEL: 'warn' };
      for (let i = 0; i < settings.recreations; i++) {
        await sleep(2000 + random() * 2000);
        await ctx.pauseLoad();
        await waitDrained(cliEnv);
        const admin = testKafka(ctx.iso.config).admin();
        await admin.connect();
        try {
          await admin.deleteTopics({ topics: [ctx.iso.config.kafkaTopic] });
          await waitFor('the topic to be gone', async () => (!(await admin.listTopics()).includes(ctx.iso.config.kafkaTopic) ? true : undefined), 30_000, 100);
          await sleep(random() * 1000);
          await admin.createTopics({ topics: [{ topic: ctx.iso.config.kafkaTopic, numPartitions: 3 }], waitForLeaders: true });
        } finally {
          await admin.disconnect();
        }
        ctx.resumeLoad();
      }
      await sleep(3000);
      return { kills: 0, outages: settings.recreations };
    });
  }, 600_000);

  it(`two producers and two consumers side by side, ${settings.rebalances} graceful restarts`, async () => {
    await scenario('two-and-two', async (ctx) => {
      const producers = [ctx.service('producer-a', 'producer'), ctx.service('producer-b', 'producer')];
      const consumers = [ctx.service('consumer-a', 'consumer')];
      await consumers[0]!.ready();
      // The second consumer joins under load: the first rebalance.
      consumers.push(ctx.service('consumer-b', 'consumer'));
      await Promise.all([...producers, ...consumers].map((s) => s.ready()));
      // Then, at even intervals, one of them leaves and comes back (two rebalances each time, for
      // a consumer) — a graceful restart, as a deploy does; SIGKILLs are the other scenarios' business.
      const every = settings.concurrentMs / (settings.rebalances + 1);
      const end = Date.now() + settings.concurrentMs;
      for (let i = 0; i < settings.rebalances; i++) {
        await sleep(Math.max(0, Math.min(every, end - Date.now())));
        const pick = i % 4; // consumer-a, producer-a, consumer-b, producer-b, …
        const s = pick % 2 === 0 ? consumers[pick === 0 ? 0 : 1]! : producers[pick === 1 ? 0 : 1]!;
        await s.restart();
        await s.ready();
      }
      await sleep(Math.max(0, end - Date.now()));
      return { kills: 0, outages: 0 };
    });
  }, 600_000);
});
