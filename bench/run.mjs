#!/usr/bin/env node
// `npm run bench`: the streamer's performance on the local stack (or wherever DATABASE_URL,
// KAFKA_BROKERS and CLICKHOUSE_URL point). Prints a table and writes the figures as JSON to
// bench/results/. Not part of `npm test`: it asserts nothing, it measures. See bench/README.md.
//
//   node bench/run.mjs [--quick] [--rows N] [--only drain,stages,latency,trigger,growth,baseline] …
//
// Every part works in its own PostgreSQL database, ClickHouse database, Kafka topic and consumer
// group (random suffix), dropped at the end. The streamer runs as the real CLI in a child process
// (`node bin/streamer.js run`), except for the per-stage breakdown, which drives the library's
// own drainBatch/startConsumer in-process so that it can time each step.
import { kafkajsPatch } from './kafkajs-first.mjs'; // first: before anything loads kafkajs
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { clickhouse, nowMs, readTopicTimes, serviceUrls, sleep, suffix, summarize, withDatabase } from './common.mjs';
import { partPeers, peersTableRows, sweep } from './peers.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH, '..');
// The compiled streamer. STREAMER_DIST points the benchmark at another build of src/ (e.g. a
// private `tsc --outDir`, so that a concurrent `npm run build` cannot swap dist/ mid-run); it must
// sit beside sql/ like dist/ does (the migrator reads ../sql/).
const DIST = resolve(process.env.STREAMER_DIST || join(ROOT, 'dist'));
/** A module of the build under test: dist/<role>/<name> since the layout by role, dist/<name> before it. */
function distModule(name) {
  if (existsSync(join(DIST, name))) return join(DIST, name);
  for (const d of readdirSync(DIST, { withFileTypes: true })) {
    if (d.isDirectory() && existsSync(join(DIST, d.name, name))) return join(DIST, d.name, name);
  }
  throw new Error(`${name} is not in the build ${DIST}`);
}

const PARTS = ['drain', 'split', 'stages', 'latency', 'trigger', 'growth', 'baseline', 'updates', 'update-latency', 'verify', 'wide', 'adopt', 'sweep', 'idle'];
const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rows: { type: 'string' }, // (a) backlog rows
    'stage-rows': { type: 'string' }, // (a) per-stage breakdown rows
    'latency-seconds': { type: 'string' }, // (b)
    rate: { type: 'string', default: '1000' }, // (b) rows/s of the load
    'poll-ms': { type: 'string', default: '5' }, // (b) pause between two ClickHouse polls
    'flush-ms': { type: 'string', default: '10,2' }, // (b) CONSUMER_FLUSH_MS values to compare
    soak: { type: 'boolean', default: false }, // (b) 10-minute soak at the default flush
    'soak-seconds': { type: 'string', default: '600' },
    'pgbench-seconds': { type: 'string' }, // (c)
    'pgbench-clients': { type: 'string', default: '4' },
    'pgbench-rounds': { type: 'string' },
    'sent-rows': { type: 'string' }, // (d)
    'baseline-rows': { type: 'string' }, // (f)
    'verify-rows': { type: 'string' }, // (i)
    'wide-rows': { type: 'string' }, // (j)
    'adopt-rows': { type: 'string' }, // (k)
    'sweep-rows': { type: 'string' }, // (l)
    'idle-seconds': { type: 'string' }, // (m)
    peers: { type: 'boolean', default: false }, // Debezium and ClickHouse's Kafka engine beside the streamer (bench/peers.mjs)
    'peers-rows': { type: 'string' },
    'peers-seconds': { type: 'string' },
    only: { type: 'string' },
    skip: { type: 'string' },
    env: { type: 'string', multiple: true }, // extra KEY=VALUE for the streamer child, e.g. PRODUCER_BATCH_SIZE=5000
    help: { type: 'boolean', short: 'h' },
  },
});
if (opt.help) {
  process.stdout.write(readFileSync(join(BENCH, 'README.md'), 'utf8'));
  process.exit(0);
}
const quick = opt.quick;
const num = (v, def) => (v === undefined ? def : Number(v));
const O = {
  rows: num(opt.rows, quick ? 100_000 : 1_000_000),
  stageRows: num(opt['stage-rows'], num(opt.rows, quick ? 100_000 : 1_000_000)),
  latencySeconds: num(opt['latency-seconds'], quick ? 15 : 60),
  rate: Number(opt.rate),
  pollMs: Number(opt['poll-ms']),
  flushMs: opt['flush-ms'].split(',').map(Number),
  soakSeconds: Number(opt['soak-seconds']),
  pgbenchSeconds: num(opt['pgbench-seconds'], quick ? 5 : 15),
  pgbenchClients: Number(opt['pgbench-clients']),
  pgbenchRounds: num(opt['pgbench-rounds'], quick ? 1 : 2),
  sentRows: num(opt['sent-rows'], quick ? 1_000_000 : 10_000_000),
  baselineRows: num(opt['baseline-rows'], quick ? 2_000 : 5_000),
  verifyRows: num(opt['verify-rows'], quick ? 1_000_000 : 10_000_000),
  wideRows: num(opt['wide-rows'], quick ? 100_000 : 1_000_000),
  adoptRows: num(opt['adopt-rows'], quick ? 1_000_000 : 10_000_000),
  sweepRows: num(opt['sweep-rows'], quick ? 100_000 : 1_000_000),
  idleSeconds: num(opt['idle-seconds'], quick ? 10 : 30),
  peersRows: num(opt['peers-rows'], quick ? 100_000 : 1_000_000),
  peersSeconds: num(opt['peers-seconds'], quick ? 15 : 60),
  extraEnv: Object.fromEntries((opt.env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
};
let parts = opt.only ? opt.only.split(',') : [...PARTS];
if (opt.skip) parts = parts.filter((p) => !opt.skip.split(',').includes(p));
if (opt.soak && !parts.includes('soak')) parts.push('soak');
if (opt.peers && !parts.includes('peers')) parts.push('peers');
for (const p of parts) if (![...PARTS, 'soak', 'peers'].includes(p)) throw new Error(`unknown part ${p}: expected ${PARTS.join(', ')}, soak, peers`);

const S = serviceUrls();
const log = (...a) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${a.join(' ')}\n`);

// ------------------------------------------------------------------ scratch databases and topics

const scratches = [];

async function pgAdmin(fn) {
  const c = new pg.Client({ connectionString: S.databaseUrl });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A fresh PostgreSQL database, ClickHouse database, topic and group; migrated unless told not to. */
async function scratch(tag, { migrate = true, env: extra = {} } = {}) {
  const id = `${tag}_${suffix()}`;
  const name = `streamer_bench_${id}`;
  await pgAdmin((c) => c.query(`CREATE DATABASE ${name}`));
  const chRoot = clickhouse(S.clickhouseUrl, { user: S.clickhouseUser, password: S.clickhousePassword });
  await chRoot.query(`CREATE DATABASE IF NOT EXISTS ${name}`);
  const databaseUrl = withDatabase(S.databaseUrl, name);
  const env = {
    ...process.env,
    DATABASE_URL: databaseUrl,
    KAFKA_BROKERS: S.kafkaBrokers,
    KAFKA_TOPIC: `bench_${id}`,
    KAFKA_GROUP_ID: `bench_${id}`,
    CLICKHOUSE_URL: S.clickhouseUrl,
    CLICKHOUSE_DATABASE: name,
    LOG_LEVEL: 'info',
    HTTP_PORT: '0',
    ...O.extraEnv,
    ...extra,
  };
  const s = {
    name,
    topic: env.KAFKA_TOPIC,
    group: env.KAFKA_GROUP_ID,
    env,
    databaseUrl,
    ch: clickhouse(S.clickhouseUrl, { user: S.clickhouseUser, password: S.clickhousePassword, database: name }),
    async pg(fn) {
      const c = new pg.Client({ connectionString: databaseUrl });
      await c.connect();
      try {
        return await fn(c);
      } finally {
        await c.end();
      }
    },
    async cleanup() {
      await pgAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).catch((e) => log('cleanup pg:', e.message));
      await chRoot.query(`DROP DATABASE IF EXISTS ${name}`).catch((e) => log('cleanup ch:', e.message));
      const admin = new Kafka({ brokers: S.kafkaBrokers.split(','), logLevel: logLevel.NOTHING }).admin();
      try {
        await admin.connect();
        const topics = (await admin.listTopics()).filter((t) => t.startsWith(env.KAFKA_TOPIC));
        if (topics.length) await admin.deleteTopics({ topics });
        await admin.deleteGroups([env.KAFKA_GROUP_ID, `${env.KAFKA_TOPIC}-baseline`, `${env.KAFKA_TOPIC}-bench-reader`]).catch(() => {});
      } catch (e) {
        log('cleanup kafka:', e.message);
      } finally {
        await admin.disconnect().catch(() => {});
      }
    },
  };
  scratches.push(s);
  if (migrate) await runStreamerOnce(['migrate'], env);
  return s;
}

async function cleanupAll() {
  while (scratches.length) await scratches.pop().cleanup();
}

/** Rows as the application would have inserted them; `sent` rows look already published. */
async function fill(s, n, { sent = false } = {}) {
  await s.pg(async (c) => {
    await c.query('SET synchronous_commit = off');
    await insertInChunks(
      c,
      n,
      `INSERT INTO user_login (username, event_type, event_time, sent_to_kafka)
       SELECT 'user_' || g, (ARRAY['login','logout','password_reset'])[1 + g % 3],
              timestamp '2024-01-01 00:00:00' + g * interval '1 second' + (g % 1000) * interval '1 microsecond', $3
         FROM generate_series($1::int, $2::int) g`,
      { more: [sent] },
    );
    await c.query('VACUUM ANALYZE user_login');
  });
}

/** `sql` for g = 1…n, `chunk` at a time: $1 and $2 are each chunk's first and last g, `more` from $3 on. */
async function insertInChunks(c, n, sql, { more = [], chunk = 2_000_000 } = {}) {
  for (let done = 0; done < n; done += chunk) await c.query(sql, [done + 1, Math.min(n, done + chunk), ...more]);
}

// ------------------------------------------------------------------ the streamer as a child process

function streamerArgv(args) {
  if (!process.env.STREAMER_DIST) return [join(ROOT, 'bin/streamer.js'), ...args];
  const cli = pathToFileURL(distModule('cli.js')).href;
  return ['--input-type=module', '-e', `import { main } from ${JSON.stringify(cli)}; main(process.argv.slice(1)).finally(() => setTimeout(() => process.exit(), 1000).unref());`, ...args];
}

/**
 * `bench/load.mjs` with `args` against the scratch database `s`, to its end: its summary (the
 * last line it prints) and the rows it wrote to `out`, each split at tabs.
 */
async function runLoad(s, args, out) {
  const load = spawn(process.execPath, [join(BENCH, 'load.mjs'), ...args], {
    env: { ...process.env, DATABASE_URL: s.databaseUrl },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let text = '';
  load.stdout.on('data', (d) => (text += d));
  const code = await new Promise((r) => load.on('exit', r));
  if (code !== 0) throw new Error(`load.mjs exited ${code}`);
  return { summary: JSON.parse(text.trim().split('\n').at(-1)), lines: readFileSync(out, 'utf8').trim().split('\n').map((l) => l.split('\t')) };
}

async function runStreamerOnce(args, env) {
  const child = spawn(process.execPath, streamerArgv(args), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise((r) => child.on('exit', r));
  if (code !== 0) throw new Error(`streamer ${args.join(' ')} exited ${code}: ${out.trim().slice(-2000)}`);
  return out;
}

/** `streamer <args>` running in the background; its JSON log lines are parsed as they come. */
function startStreamer(args, env) {
  // BENCH_NODE_ARGS: extra node flags for the streamer child, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const childLog = process.env.BENCH_CHILD_LOG;
  const child = spawn(process.execPath, [...nodeArgs, ...streamerArgv(args)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  const waiters = [];
  let rest = '';
  let rssMax = 0;
  const onData = (d) => {
    // BENCH_CHILD_LOG: the child's output kept in a file too, each chunk after a line `@@T <ms since
    // the epoch>` — for V8's traces (--trace-opt, --trace-gc-nvp), which are not JSON lines.
    if (childLog) appendFileSync(childLog, `@@T ${Date.now()}\n${d}`);
    rest += d;
    let i;
    while ((i = rest.indexOf('\n')) >= 0) {
      const text = rest.slice(0, i);
      rest = rest.slice(i + 1);
      let line;
      try {
        line = JSON.parse(text);
      } catch {
        line = { msg: text };
      }
      line.at = nowMs();
      lines.push(line);
      for (const w of [...waiters]) if (w.test(line)) w.resolve(line);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const sampler = setInterval(() => {
    const st = procStatus(child.pid);
    if (st.VmRSS) rssMax = Math.max(rssMax, st.VmRSS);
  }, 100);
  return {
    child,
    lines,
    exited,
    waitFor(test, timeoutMs = 60_000, what = 'log line') {
      const found = lines.find(test);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { test, resolve: (l) => (clearTimeout(timer), resolve(l)) };
        const timer = setTimeout(() => reject(new Error(`streamer: no ${what} within ${timeoutMs} ms; last lines:\n${lines.slice(-10).map((l) => JSON.stringify(l)).join('\n')}`)), timeoutMs);
        waiters.push(w);
        exited.then(({ code }) => reject(new Error(`streamer exited (${code}) before ${what}; last lines:\n${lines.slice(-10).map((l) => JSON.stringify(l)).join('\n')}`)));
      });
    },
    memory() {
      const st = procStatus(child.pid);
      return { peakRssMB: (st.VmHWM ?? 0) / 1024, rssMB: (st.VmRSS ?? 0) / 1024, sampledPeakRssMB: rssMax / 1024 };
    },
    async stop() {
      clearInterval(sampler);
      if (child.exitCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

function procStatus(pid) {
  try {
    const out = {};
    for (const l of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
      const m = /^(Vm\w+):\s+(\d+) kB/.exec(l);
      if (m) out[m[1]] = Number(m[2]);
    }
    return out;
  } catch {
    return {};
  }
}

// ------------------------------------------------------------------ CPU time per service

/** The pid listening on a local TCP port (needs to see the owner's /proc/<pid>/fd: same user or root). */
function listenerPid(port) {
  const inodes = new Set();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      for (const l of readFileSync(f, 'utf8').split('\n').slice(1)) {
        const c = l.trim().split(/\s+/);
        if (c.length > 9 && c[3] === '0A' && parseInt(c[1].split(':')[1], 16) === port) inodes.add(c[9]);
      }
    } catch {
      /* no IPv6 */
    }
  }
  if (inodes.size === 0) return null;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1])) return Number(pid);
      }
    } catch {
      /* gone or not ours */
    }
  }
  return null;
}

const TICK = 100; // USER_HZ on Linux
function statOf(pid) {
  try {
    const t = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = t.slice(t.lastIndexOf(')') + 2).split(' ');
    // fields after the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14)
    return { ppid: Number(f[1]), own: (Number(f[11]) + Number(f[12])) / TICK, system: Number(f[12]) / TICK, children: (Number(f[13]) + Number(f[14])) / TICK };
  } catch {
    return null;
  }
}

/** CPU seconds used so far by a process, its live children and its waited-for dead children. */
function cpuOfTree(pid) {
  if (!pid) return null;
  const root = statOf(pid);
  if (!root) return null;
  let total = root.own + root.children;
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    const st = statOf(p);
    if (st && st.ppid === pid) total += st.own;
  }
  return total;
}

/** Snapshots CPU seconds of the three services (found by their ports) and of extra pids. */
function cpuMeter(extra = {}) {
  const port = (u, def) => Number(new URL(u).port || def);
  const pids = {
    postgresql: listenerPid(port(S.databaseUrl, 5432)),
    kafka: listenerPid(Number(S.kafkaBrokers.split(',')[0].split(':').at(-1))),
    clickhouse: listenerPid(port(S.clickhouseUrl, 8123)),
    ...extra,
  };
  const snap = () => Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuOfTree(pid)]));
  // The kernel's share of the processes the bench started (socket writes and reads are most of it).
  const system = () => Object.fromEntries(Object.entries(extra).map(([k, pid]) => [k, statOf(pid)?.system ?? null]));
  const first = snap();
  const firstSystem = system();
  const t0 = nowMs();
  const host0 = hostCpu();
  return {
    pids,
    /** CPU seconds per service since the meter started, and the machine's total busy seconds. */
    read() {
      const now = snap();
      const out = Object.fromEntries(Object.keys(pids).map((k) => [k, now[k] === null || first[k] === null ? null : now[k] - first[k]]));
      const nowSystem = system();
      out.systemSeconds = Object.fromEntries(Object.keys(extra).map((k) => [k, nowSystem[k] === null || firstSystem[k] === null ? null : nowSystem[k] - firstSystem[k]]));
      const host1 = hostCpu();
      out.wallSeconds = (nowMs() - t0) / 1000;
      out.machineBusySeconds = host1.busy - host0.busy;
      out.machineCores = os.cpus().length;
      // What the machine was busy with beyond the processes measured (another tenant, a server's
      // background work, the hypervisor's steal, which /proc/stat counts as busy): a part run
      // while it was large measured a disturbed machine.
      out.stealSeconds = host1.steal - host0.steal;
      out.unaccountedSeconds = out.machineBusySeconds - Object.keys(pids).reduce((sum, k) => sum + (out[k] ?? 0), 0);
      return out;
    },
  };
}

function hostCpu() {
  const l = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = l[3] + l[4];
  return { busy: (l.reduce((a, b) => a + b, 0) - idle) / TICK, steal: (l[7] ?? 0) / TICK };
}

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
    srv.on('error', rej);
  });
}

async function scrape(port) {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const get = (name) => {
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
      return m ? Number(m[1]) : null;
    };
    return {
      inserts: get('streamer_consumer_batch_rows_count'),
      producerBatches: get('streamer_producer_batch_rows_count'),
      published: get('streamer_rows_published_total'),
      inserted: get('streamer_rows_inserted_total'),
      duplicates: get('streamer_rows_duplicate_skipped_total'),
      claimToClickhouseMeanMs: (get('streamer_claim_to_clickhouse_seconds_sum') / get('streamer_claim_to_clickhouse_seconds_count')) * 1000,
    };
  } catch (e) {
    return { error: e.message };
  }
}

/** Part (a): the rows in ClickHouse after which the drain's CPU is also read (cpuSecondsAfterWarmUp). */
const WARM_UP_SHARE = 0.3;

/**
 * The drain's share of the machine limit (goal 3b of the performance issue): its rows/s against
 * the rate the cores would reach if the streamer cost nothing (cores ÷ the three servers' CPU per
 * row, measured in the same drain).
 */
function limitShare(c, rows) {
  const servers = c.postgresql + c.kafka + c.clickhouse;
  return rows / c.wallSeconds / (c.machineCores / (servers / rows));
}

async function waitCount(s, n, timeoutMs, intervalMs = 50, table = 'user_login') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = await s.ch.scalar(`SELECT count() FROM ${table}`);
    if (c >= n) return { count: c, at: nowMs() };
    if (Date.now() > deadline) throw new Error(`ClickHouse holds ${c} of ${n} rows after ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

const activeParts = (s) => s.ch.scalar(`SELECT count() FROM system.parts WHERE database = '${s.name}' AND table = 'user_login' AND active`);

// ------------------------------------------------------------------ (a) backlog drain, (e) memory

/**
 * `mode` "run": one `streamer run` process (the default deployment). "split": `streamer consumer`
 * and `streamer producer` as two processes, so that the two halves get a core each.
 */
async function partDrain(mode = 'run') {
  const n = O.rows;
  const s = await scratch(mode === 'run' ? 'drain' : 'drain_split');
  log(`(a) backlog drain (${mode === 'run' ? 'streamer run' : 'streamer producer + streamer consumer'}): filling ${n} pending rows`);
  await fill(s, n);
  const port = await freePort();
  const spawnedAt = nowMs();
  const procs = [];
  try {
    let started;
    if (mode === 'run') {
      procs.push(startStreamer(['run'], { ...s.env, HTTP_PORT: String(port) }));
      started = await procs[0].waitFor((l) => l.msg === 'producer started', 60_000, '"producer started"');
    } else {
      procs.push(startStreamer(['consumer'], { ...s.env, HTTP_PORT: String(port) }));
      await procs[0].waitFor((l) => l.msg === 'joined the consumer group', 60_000, '"joined the consumer group"');
      procs.push(startStreamer(['producer'], { ...s.env, HTTP_PORT: '0' }));
      started = await procs[1].waitFor((l) => l.msg === 'producer started', 60_000, '"producer started"');
    }
    const meter = cpuMeter(Object.fromEntries(procs.map((p, i) => [mode === 'run' ? 'streamer' : ['consumer', 'producer'][i], p.child.pid])));
    // The CPU once WARM_UP_SHARE of the rows are in ClickHouse too: the rest of the drain without
    // the process's first seconds, when V8 compiles its hot code (~10 % of a 1,000,000-row drain's
    // streamer CPU on 2 cores).
    const warm = await waitCount(s, Math.ceil(n * WARM_UP_SHARE), Math.max(180_000, n / 2));
    const atWarm = meter.read();
    const done = await waitCount(s, n, Math.max(180_000, n / 2));
    const cpuSeconds = meter.read();
    const afterWarmUp = { rows: n - warm.count, ...Object.fromEntries(['streamer', 'consumer', 'producer', 'postgresql', 'kafka', 'clickhouse', 'machineBusySeconds', 'wallSeconds'].filter((k) => typeof cpuSeconds[k] === 'number').map((k) => [k, cpuSeconds[k] - atWarm[k]])) };
    for (const c of [cpuSeconds, afterWarmUp]) if (mode !== 'run') c.streamer = c.consumer + c.producer;
    afterWarmUp.machineCores = cpuSeconds.machineCores;
    const seconds = (done.at - started.at) / 1000;
    const metrics = await scrape(port);
    const mems = procs.map((p) => p.memory());
    for (const p of procs) await p.stop();
    const [count, distinct] = (await s.ch.query('SELECT count(), uniqExact(id) FROM user_login')).trim().split('\t').map(Number);
    const r = {
      mode,
      rows: n,
      seconds,
      rowsPerS: n / seconds,
      startupSeconds: (started.at - spawnedAt) / 1000,
      wallSecondsIncludingStartup: (done.at - spawnedAt) / 1000,
      clickhouseCount: count,
      clickhouseDistinctIds: distinct,
      inserts: metrics.inserts,
      peakRssMB: Math.max(...mems.map((m) => m.peakRssMB)),
      peakRssPerProcessMB: mems.map((m) => m.peakRssMB),
      partsAtEnd: await activeParts(s),
      cpuSeconds,
      cpuSecondsAfterWarmUp: afterWarmUp,
    };
    log(`(a) ${mode}: ${n} rows in ${seconds.toFixed(2)} s = ${Math.round(r.rowsPerS)} rows/s, peak RSS ${r.peakRssPerProcessMB.map((x) => x.toFixed(0)).join(' + ')} MB`);
    return r;
  } finally {
    for (const p of procs) await p.stop();
  }
}

// ------------------------------------------------------------------ (m) idle

/** Voluntary context switches of a process's main thread so far: how often it went to sleep and was woken. */
function wakeUpsOf(pid) {
  const m = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : null;
}

/** The pause after start-up before the idle streamer is measured: its connections made, its first sweep done. */
const IDLE_SETTLE_MS = 5_000;

/**
 * `streamer run` with nothing to replicate: its CPU and its main thread's wake-ups a second. A
 * replication daemon spends most of its life idle; kafkajs's request queues polled themselves every
 * millisecond there until kafkajs-patch.ts stopped it (~910 wake-ups a second, 3–4 % of a core).
 */
async function partIdle() {
  const s = await scratch('idle');
  const port = await freePort();
  const p = startStreamer(['run'], { ...s.env, HTTP_PORT: String(port) });
  try {
    await p.waitFor((l) => l.msg === 'producer started', 60_000, '"producer started"');
    await p.waitFor((l) => l.msg === 'consuming', 60_000, '"consuming"');
    await sleep(IDLE_SETTLE_MS);
    log(`(m) idle streamer run: measuring for ${O.idleSeconds} s`);
    const pid = p.child.pid;
    const [cpu0, woken0, t0] = [cpuOfTree(pid), wakeUpsOf(pid), nowMs()];
    await sleep(O.idleSeconds * 1000);
    const [cpu1, woken1, t1] = [cpuOfTree(pid), wakeUpsOf(pid), nowMs()];
    const seconds = (t1 - t0) / 1000;
    // Lines the runtime printed on stderr (Node's warnings are no JSON log lines), e.g. Node 24's TimeoutNegativeWarning.
    const warnings = p.lines.filter((l) => /\(node:\d+\) \w*Warning/.test(l.msg ?? '')).map((l) => l.msg);
    const r = { seconds, cpuSeconds: cpu1 - cpu0, coreShare: (cpu1 - cpu0) / seconds, wakeUpsPerS: (woken1 - woken0) / seconds, rssMB: p.memory().rssMB, nodeWarnings: warnings };
    log(`(m) idle: ${(r.coreShare * 100).toFixed(2)} % of a core, ${Math.round(r.wakeUpsPerS)} wake-ups/s, ${warnings.length} Node warnings`);
    return r;
  } finally {
    await p.stop();
  }
}

// ------------------------------------------------------------------ (a) where the time goes

async function partStages() {
  const n = O.stageRows;
  const s = await scratch('stages');
  log(`(a) stages: filling ${n} pending rows`);
  await fill(s, n);
  const lib = async (m) => import(pathToFileURL(distModule(m)).href);
  const { loadConfig } = await lib('config.js');
  const { createLogger } = await lib('logger.js');
  const { createPool } = await lib('db.js');
  const { createPublisher } = await lib('publisher.js');
  const { drainBatch, loadSources } = await lib('producer.js');
  const { startConsumer } = await lib('consumer.js');
  const { TableSink } = await lib('sink.js');
  const config = loadConfig({ ...s.env, LOG_LEVEL: 'warn' });
  const logger = createLogger({ level: 'warn', pretty: false });

  // Producer side: the library's drainBatch, with PostgreSQL queries and Kafka sends timed.
  const t = { claim: 0, mark: 0, txn: 0, publish: 0 };
  const pool = createPool(config, logger, 'bench-stages');
  const [source] = await loadSources(pool, config);
  const connect = pool.connect.bind(pool);
  pool.connect = async () => {
    const client = await connect();
    if (!client.benchTimed) {
      client.benchTimed = true;
      const query = client.query.bind(client);
      client.query = (text, params) => {
        const t0 = performance.now();
        if (typeof text?.submit === 'function') {
          // The claim as COPY (copy-out.ts): timed to its end (ReadyForQuery, or an error).
          for (const m of ['handleReadyForQuery', 'handleError']) {
            const f = text[m].bind(text);
            text[m] = (...args) => {
              t.claim += performance.now() - t0;
              return f(...args);
            };
          }
          return query(text);
        }
        // (since issue 14's sessions the claim marks its rows itself: 'mark' stays 0 there, and
        // builds before d136530 sent it as claimRows rather than as a COPY)
        const key = text === source.plans.claimRows ? 'claim' : text === source.plans.markSent ? 'mark' : 'txn';
        return query(text, params).finally(() => (t[key] += performance.now() - t0));
      };
    }
    return client;
  };
  const inner = createPublisher(config, logger);
  await inner.connect();
  const publisher = {
    connect: async () => {},
    close: () => inner.close(),
    abandon: () => inner.abandon(),
    partitions: (topic) => inner.partitions(topic),
    // (builds before 89f700a pass the claim time as a third argument; later ones put it in each message)
    async publish(topic, messages, ts) {
      const t0 = performance.now();
      try {
        return await inner.publish(topic, messages, ts);
      } finally {
        t.publish += performance.now() - t0;
      }
    },
  };
  log(`(a) stages: producer (drainBatch, batch ${config.producerBatchSize}) → Kafka`);
  const p0 = performance.now();
  let published = 0;
  let batches = 0;
  for (;;) {
    const r = await drainBatch(pool, publisher, config, logger, source);
    published += r.published;
    batches++;
    if (r.claimed === 0) break;
  }
  const producerMs = performance.now() - p0;
  await publisher.close();
  await pool.end();

  // Consumer side: the library's consumer on the now full topic, with the sink's two ClickHouse
  // round trips timed (the existence check and the insert).
  const c = { write: 0, existing: 0, insert: 0, writes: 0, firstWriteAt: 0 };
  const proto = TableSink.prototype;
  const orig = { write: proto.write, storedVersions: proto.storedVersions, insertSplitting: proto.insertSplitting };
  proto.write = async function (inputs) {
    const t0 = performance.now();
    if (!c.firstWriteAt) c.firstWriteAt = nowMs();
    c.writes++;
    try {
      return await orig.write.call(this, inputs);
    } finally {
      c.write += performance.now() - t0;
    }
  };
  proto.storedVersions = async function (rows) {
    const t0 = performance.now();
    try {
      return await orig.storedVersions.call(this, rows);
    } finally {
      c.existing += performance.now() - t0;
    }
  };
  let depth = 0;
  proto.insertSplitting = async function (...args) {
    const t0 = performance.now();
    depth++;
    try {
      return await orig.insertSplitting.apply(this, args);
    } finally {
      depth--;
      if (depth === 0) c.insert += performance.now() - t0;
    }
  };
  log('(a) stages: consumer, Kafka → ClickHouse');
  const c0 = nowMs();
  let consumer;
  let consumerMs;
  try {
    consumer = await startConsumer(config, logger);
    const done = await waitCount(s, n, Math.max(180_000, n / 2), 20);
    consumerMs = done.at - c.firstWriteAt;
  } finally {
    await consumer?.stop();
    Object.assign(proto, orig);
  }
  const r = {
    rows: n,
    // Whether the build's kafkajs patches (record batches, murmur2) ran in this process: false
    // when kafkajs was loaded first, and then kafkajs's own encoder was timed.
    kafkajsPatched: kafkajsPatch?.active ?? null,
    producer: {
      ms: producerMs,
      rowsPerS: (published / producerMs) * 1000,
      batches,
      pgClaimMs: t.claim,
      pgMarkMs: t.mark,
      pgBeginCommitMs: t.txn,
      kafkaPublishMs: t.publish,
      otherMs: producerMs - t.claim - t.mark - t.txn - t.publish,
    },
    consumer: {
      ms: consumerMs,
      rowsPerS: (n / consumerMs) * 1000,
      joinMs: c.firstWriteAt - c0,
      inserts: c.writes,
      clickhouseStoredVersionsMs: c.existing,
      clickhouseInsertMs: c.insert,
      sinkMappingMs: c.write - c.existing - c.insert,
      kafkaFetchDecodeCommitMs: consumerMs - c.write,
    },
  };
  log(`(a) stages: producer ${Math.round(r.producer.rowsPerS)} rows/s, consumer ${Math.round(r.consumer.rowsPerS)} rows/s`);
  return r;
}

// ------------------------------------------------------------------ (b) live latency

async function partLatency(flushMs, seconds, { soak = false } = {}) {
  const s = await scratch(soak ? 'soak' : `lat${flushMs}`);
  const port = await freePort();
  const st = startStreamer(['run'], { ...s.env, HTTP_PORT: String(port), CONSUMER_FLUSH_MS: String(flushMs) });
  const tmp = join(os.tmpdir(), `streamer-bench-load-${suffix()}.tsv`);
  let stopPolling = () => {};
  try {
    await st.waitFor((l) => l.msg === 'producer started', 60_000, '"producer started"');
    await st.waitFor((l) => l.msg === 'joined the consumer group', 60_000, '"joined the consumer group"');
    log(`(b) latency: CONSUMER_FLUSH_MS=${flushMs}, ${O.rate} rows/s for ${seconds} s${soak ? ' (soak)' : ''}`);

    // The poller: every ~5 ms, the ids ClickHouse shows from the lowest not yet seen; an id's
    // first-seen time is the end of the first poll that returned it.
    const total = Math.round(O.rate * seconds);
    const seen = new Float64Array(total + 2);
    let low = 1;
    let polling = true;
    let partsTimer;
    stopPolling = () => {
      polling = false;
      clearInterval(partsTimer);
    };
    const pollGaps = [];
    const partsSamples = [];
    const poller = (async () => {
      let prev = nowMs();
      while (polling) {
        const text = await s.ch.query(`SELECT id FROM user_login WHERE id >= ${low} FORMAT TabSeparated`).catch((e) => {
          if (polling) log(`(b) poll failed: ${e.message}`);
          return '';
        });
        const at = nowMs();
        pollGaps.push(at - prev);
        prev = at;
        for (const line of text.split('\n')) {
          if (!line) continue;
          const id = Number(line);
          if (id < seen.length && !seen[id]) seen[id] = at;
        }
        while (low < seen.length && seen[low]) low++;
        await sleep(O.pollMs);
      }
    })();
    if (soak) {
      partsTimer = setInterval(async () => {
        const p = await activeParts(s).catch(() => null);
        partsSamples.push({ t: Math.round((nowMs() - loadStart) / 1000), parts: p });
        if (partsSamples.length % 6 === 0) log(`(b) soak: ${partsSamples.at(-1).t} s, ${p} active parts`);
      }, 10_000);
    }
    const loadStart = nowMs();
    const meter = cpuMeter({ streamer: st.child.pid, harness: process.pid });
    const { summary: loadResult, lines } = await runLoad(s, ['--rate', String(O.rate), '--seconds', String(seconds), '--out', tmp], tmp);
    const cpu = meter.read();
    const rows = lines.map((l) => l.map(Number));
    // Wait for the last rows to show up (bounded).
    const maxId = rows.reduce((m, r) => Math.max(m, r[0]), 0); // (no spread: 600,000 rows in a soak)
    const deadline = Date.now() + 30_000;
    while (low <= maxId && Date.now() < deadline) await sleep(20);
    polling = false;
    await poller;
    clearInterval(partsTimer);
    // The producer stamps each message with the moment it claimed the row: read them back to
    // split the latency into PostgreSQL commit → claimed, and claimed → visible in ClickHouse.
    const claimedAt = await readClaimTimes(s.topic, rows.length);
    const latencies = [];
    const toClaim = [];
    const claimToSeen = [];
    let missing = 0;
    for (const [id, , acked] of rows) {
      if (id < seen.length && seen[id]) latencies.push(seen[id] - acked);
      else missing++;
      const c = claimedAt.get(id);
      if (c !== undefined) {
        toClaim.push(c - acked);
        if (seen[id]) claimToSeen.push(seen[id] - c);
      }
    }
    const metrics = await scrape(port);
    const mem = st.memory();
    const parts = await activeParts(s);
    await st.stop();
    const cycles = st.lines.find((l) => l.msg === 'CYCLES');
    if (cycles) log(`(b) consumer cycles: ${JSON.stringify(cycles)}`);
    const tooManyParts = st.lines.filter((l) => /too many parts/i.test(JSON.stringify(l))).length;
    const r = {
      flushMs,
      seconds,
      targetRate: O.rate,
      load: loadResult,
      latencyMs: summarize(latencies),
      commitToClaimMs: summarize(toClaim),
      claimToVisibleMs: summarize(claimToSeen),
      missing,
      poll: summarize(pollGaps),
      partsAtEnd: parts,
      maxPartsSampled: partsSamples.length ? Math.max(...partsSamples.map((p) => p.parts ?? 0)) : null,
      partsSamples: soak ? partsSamples : undefined,
      inserts: metrics.inserts,
      insertsPerS: metrics.inserts / seconds,
      claimToClickhouseMeanMs: metrics.claimToClickhouseMeanMs,
      tooManyPartsLogLines: tooManyParts,
      warnings: st.lines.filter((l) => l.level >= 40).length,
      // cores used on average while the load ran; `harness` = the ClickHouse poller + the load process (its child)
      coresBusy: Object.fromEntries(Object.entries(cpu).filter(([k, v]) => !['wallSeconds', 'machineCores'].includes(k) && (v === null || typeof v === 'number')).map(([k, v]) => [k, v === null ? null : Math.round((v / cpu.wallSeconds) * 100) / 100])),
      ...mem,
    };
    const L = r.latencyMs;
    log(`(b) flush ${flushMs} ms: p50 ${L.p50?.toFixed(1)} p95 ${L.p95?.toFixed(1)} p99 ${L.p99?.toFixed(1)} max ${L.max?.toFixed(1)} ms; ${parts} parts; ${missing} not seen`);
    return r;
  } finally {
    stopPolling();
    await st.stop();
    rmSync(tmp, { force: true });
  }
}

/** id → Kafka message timestamp (ms; the producer's claim time) of every message of the topic. */
function readClaimTimes(topic, expected) {
  const idOf = (m) => (m.key ? Number(m.key) : undefined);
  return readTopicTimes({ brokers: S.kafkaBrokers.split(','), topic, groupId: `${topic}-bench-reader`, expected, idOf, timeoutMs: 20_000 });
}

// ------------------------------------------------------------------ (c) trigger overhead

function pgbenchPath() {
  if (process.env.PGBENCH) return process.env.PGBENCH;
  for (const d of ['/usr/bin', ...(existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').sort().reverse().map((v) => `/usr/lib/postgresql/${v}/bin`) : [])]) {
    if (existsSync(`${d}/pgbench`)) return `${d}/pgbench`;
  }
  return 'pgbench';
}

async function pgbench(databaseUrl, script = 'pgbench-insert.sql') {
  const u = new URL(databaseUrl);
  const args = ['-n', '-f', join(BENCH, script), '-c', String(O.pgbenchClients), '-j', String(Math.min(O.pgbenchClients, os.cpus().length)), '-T', String(O.pgbenchSeconds)];
  args.push('-h', u.hostname, '-p', u.port || '5432', '-U', decodeURIComponent(u.username || 'postgres'), u.pathname.slice(1));
  const child = spawn(pgbenchPath(), args, { env: { ...process.env, PGPASSWORD: decodeURIComponent(u.password) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise((r) => child.on('exit', r));
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(out);
  if (code !== 0 || !m) throw new Error(`pgbench failed (${code}): ${out.slice(-1000)}`);
  const lat = /latency average = ([\d.]+) ms/.exec(out);
  return { tps: Number(m[1]), latencyAvgMs: lat ? Number(lat[1]) : null };
}

/** Drops every trigger of user_login (whatever a build named them): the table as the application alone has it. */
const DROP_TRIGGERS = `DO $$ DECLARE t record; BEGIN
  FOR t IN SELECT tgname FROM pg_trigger WHERE tgrelid = 'user_login'::regclass AND NOT tgisinternal LOOP
    EXECUTE format('DROP TRIGGER %I ON user_login', t.tgname);
  END LOOP; END $$`;

async function partTrigger() {
  const withT = await scratch('trig_with');
  const without = await scratch('trig_without');
  await without.pg((c) => c.query(DROP_TRIGGERS));
  const runs = { with: [], without: [] };
  for (let round = 0; round < O.pgbenchRounds; round++) {
    for (const [k, s] of [['with', withT], ['without', without]]) {
      log(`(c) pgbench ${k} trigger, round ${round + 1}: -c ${O.pgbenchClients} -T ${O.pgbenchSeconds}`);
      runs[k].push(await pgbench(s.databaseUrl));
    }
  }
  const mean = (a) => a.reduce((x, y) => x + y.tps, 0) / a.length;
  const r = { clients: O.pgbenchClients, seconds: O.pgbenchSeconds, rounds: O.pgbenchRounds, withTrigger: mean(runs.with), withoutTrigger: mean(runs.without), runs };
  r.overheadPct = (1 - r.withTrigger / r.withoutTrigger) * 100;
  log(`(c) ${r.withTrigger.toFixed(0)} vs ${r.withoutTrigger.toFixed(0)} INSERT/s: ${r.overheadPct.toFixed(1)} % fewer with the trigger`);
  return r;
}

// ------------------------------------------------------------------ (d) cost growth

async function partGrowth() {
  const { loadSources } = await import(pathToFileURL(distModule('producer.js')).href);
  const { tableConfigs } = await import(pathToFileURL(distModule('tables.js')).href);
  const measure = async (s) =>
    s.pg(async (c) => {
      const [source] = await loadSources(c, { tables: tableConfigs({}) });
      const CLAIM_BATCH = source.plans.claimRows;
      const MARK_SENT = source.plans.markSent;
      const claim = [];
      const claimMark = [];
      for (let i = 0; i < 33; i++) {
        await c.query('BEGIN');
        const t0 = performance.now();
        const { rows } = await c.query(CLAIM_BATCH, [2000, 'public.user_login']);
        const t1 = performance.now();
        if (i % 3 === 2) {
          // claim + mark, rolled back so that every repetition sees the same 1,000 pending rows
          // (builds since issue 14's last session mark in the claim itself: no MARK_SENT)
          if (MARK_SENT) await c.query(MARK_SENT, [rows.map((r) => r.k0)]);
          claimMark.push(performance.now() - t0);
        }
        await c.query('ROLLBACK');
        if (i >= 3) claim.push(t1 - t0);
        if (rows.length !== 1000) throw new Error(`claimed ${rows.length} rows, expected 1000`);
      }
      const plan = (await c.query(`EXPLAIN ${CLAIM_BATCH.replace('$1', '2000').replaceAll('$2', "'public.user_login'")}`)).rows.map((r) => r['QUERY PLAN']).join('\n');
      const size = (await c.query(`SELECT pg_total_relation_size('user_login') AS b`)).rows[0].b;
      return { claimMs: summarize(claim), claimMarkMs: summarize(claimMark), usesPendingIndex: plan.includes('user_login_pending_idx'), tableMB: Number(size) / 2 ** 20 };
    });
  const big = await scratch('growth_big');
  log(`(d) cost growth: filling ${O.sentRows} sent rows + 1000 pending`);
  await fill(big, O.sentRows, { sent: true });
  await big.pg((c) =>
    c.query(`INSERT INTO user_login (username, event_type, event_time) SELECT 'user_' || g, 'login', now() FROM generate_series(1, 1000) g; ANALYZE user_login`),
  );
  const small = await scratch('growth_small');
  await fill(small, 1000);
  const r = { sentRows: O.sentRows, pending: 1000, batch: 2000, big: await measure(big), empty: await measure(small) };
  r.ratioP50 = r.big.claimMs.p50 / r.empty.claimMs.p50;
  log(`(d) claim p50 ${r.big.claimMs.p50.toFixed(2)} ms with ${O.sentRows} sent vs ${r.empty.claimMs.p50.toFixed(2)} ms empty (${r.ratioP50.toFixed(2)}×)`);
  return r;
}

// ------------------------------------------------------------------ (f) the seed's design

async function partBaseline() {
  const n = O.baselineRows;
  const s = await scratch('baseline');
  // The seed's PostgreSQL schema: the table only (no partial index, no triggers).
  await s.pg((c) =>
    c.query(`${DROP_TRIGGERS}; DROP INDEX user_login_pending_idx`),
  );
  await fill(s, n);
  const admin = new Kafka({ brokers: S.kafkaBrokers.split(','), logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: s.topic }], waitForLeaders: true });
  await admin.disconnect();
  log(`(f) baseline (seed design: per-row SELECT/send/UPDATE, per-row ClickHouse INSERT): ${n} rows`);
  const child = spawn(process.execPath, [join(BENCH, 'baseline.mjs'), '--rows', String(n)], { env: s.env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const code = await new Promise((r) => child.on('exit', r));
  if (code !== 0) throw new Error(`baseline.mjs exited ${code}`);
  const r = JSON.parse(out.trim().split('\n').at(-1));
  r.partsAtEnd = await activeParts(s);
  log(`(f) baseline: producer ${r.producerRowsPerS.toFixed(0)} rows/s, end to end ${r.e2eRowsPerS.toFixed(0)} rows/s`);
  return r;
}

// ------------------------------------------------------------------ environment, report

/**
 * Where ClickHouse writes parts, and on what file system when it is this machine's: on 18.16 an
 * insert of a few rows costs ~3 ms on tmpfs and 10–30 ms on ext4 (creating its ~30 files), so
 * the latency figures depend on it (bench/README.md).
 */
async function clickhouseDataStorage(ch) {
  const db = `bench_probe_${suffix()}`;
  try {
    await ch.query(`CREATE DATABASE ${db}`);
    await ch.query(`CREATE TABLE ${db}.t (x UInt8) ENGINE = MergeTree ORDER BY x`);
    await ch.query(`INSERT INTO ${db}.t VALUES (1)`);
    const path = (await ch.query(`SELECT path FROM system.parts WHERE database = '${db}' LIMIT 1`)).trim();
    let fileSystem = 'unknown (not on this machine)';
    if (path && existsSync(path)) {
      const r = spawnSync('stat', ['-f', '-c', '%T', path], { encoding: 'utf8' });
      if (r.status === 0) fileSystem = r.stdout.trim();
    }
    return { partPath: path, fileSystem };
  } catch (err) {
    return { error: String(err.message ?? err).slice(0, 200) };
  } finally {
    await ch.query(`DROP DATABASE IF EXISTS ${db}`).catch(() => {});
  }
}

async function environment() {
  const pgVersion = await pgAdmin(async (c) => (await c.query('SHOW server_version')).rows[0].server_version);
  // fsync=off (the local stack) makes commits far cheaper than on a durable server: record it.
  const pgSettings = await pgAdmin(async (c) =>
    Object.fromEntries((await c.query(`SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'max_connections')`)).rows.map((r) => [r.name, r.setting])),
  );
  const ch = clickhouse(S.clickhouseUrl, { user: S.clickhouseUser, password: S.clickhousePassword });
  const chVersion = (await ch.query('SELECT version()')).trim();
  const clickhouseStorage = await clickhouseDataStorage(ch);
  let kafkaVersion = process.env.KAFKA_VERSION || null;
  if (!kafkaVersion) {
    // The broker does not report its version over the protocol; read it from the running
    // broker's class path (the local stack) when there is one.
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (!cmd.includes('kafka.Kafka')) continue;
        // -cp "<dir>/libs/*": the jar names are in the folder
        const cp = cmd.split('\0').find((a, i, all) => all[i - 1] === '-cp' || all[i - 1] === '-classpath') ?? '';
        const jars = cp.split(':').flatMap((e) => (e.endsWith('/*') && existsSync(e.slice(0, -2)) ? readdirSync(e.slice(0, -2)) : [e])).join(' ');
        const m = /kafka_2\.1\d-([\w.-]+?)\.jar/.exec(jars);
        if (m && cmd.includes('kafka.Kafka')) {
          kafkaVersion = m[1];
          break;
        }
      } catch {
        /* gone */
      }
    }
  }
  const pkg = (name) => JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
  return {
    machine: {
      cores: os.cpus().length,
      memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
      kernel: `${os.type()} ${os.release()}`,
    },
    versions: { node: process.version, postgresql: pgVersion, clickhouse: chVersion, kafka: kafkaVersion ?? 'unknown', kafkajs: pkg('kafkajs'), clickhouseClient: pkg('@clickhouse/client'), pg: pkg('pg') },
    postgresqlSettings: pgSettings,
    clickhouseStorage,
    services: { databaseUrl: S.databaseUrl.replace(/:[^:@/]+@/, ':***@'), kafkaBrokers: S.kafkaBrokers, clickhouseUrl: S.clickhouseUrl },
  };
}

const f0 = (x) => (x === null || x === undefined || Number.isNaN(x) ? '—' : Math.round(x).toLocaleString('en-US'));
const f1 = (x) => (x === null || x === undefined || Number.isNaN(x) ? '—' : x.toFixed(1));
const f2 = (x) => (x === null || x === undefined || Number.isNaN(x) ? '—' : x.toFixed(2));

function table(res) {
  const rows = [];
  const add = (part, measure, value, target = '', met = null) => rows.push([part, measure, value, target, met === null ? '' : met ? 'yes' : 'NO']);
  const R = res.results;
  // Cores busy outside the processes measured (the harness's own polling among them: a few
  // hundredths of a core); above a quarter of a core the part measured a disturbed machine.
  const unaccounted = (part, c) => {
    if (!c || typeof c.unaccountedSeconds !== 'number' || !(c.wallSeconds > 0)) return;
    const cores = c.unaccountedSeconds / c.wallSeconds;
    add(part, '  cores busy outside the measured processes (of which stolen by the hypervisor)', `${f2(cores)} (${f2(c.stealSeconds / c.wallSeconds)})${cores > 0.25 ? ': DISTURBED, compare with care' : ''}`);
  };
  if (R.drain) {
    const d = R.drain;
    add('a', `backlog drain, ${f0(d.rows)} rows, end to end (streamer run)`, `${f0(d.rowsPerS)} rows/s`, '≥ 50,000 rows/s', d.rowsPerS >= 50_000);
    add('a', '  drain time (start-up excluded) / inserts', `${f2(d.seconds)} s / ${f0(d.inserts)} inserts`);
    const c = d.cpuSeconds;
    if (c) {
      const us = (x) => (x === null ? '?' : f1((x / d.rows) * 1e6));
      add('a', '  CPU µs per row: streamer / PostgreSQL / Kafka / ClickHouse (machine)', `${us(c.streamer)} / ${us(c.postgresql)} / ${us(c.kafka)} / ${us(c.clickhouse)} (${us(c.machineBusySeconds)})`);
      add('a', '  cores busy during the drain (of ' + c.machineCores + ')', f2(c.machineBusySeconds / c.wallSeconds));
      if ([c.postgresql, c.kafka, c.clickhouse].every((x) => typeof x === 'number')) {
        const share = limitShare(c, d.rows);
        add('a', '  of the machine limit (cores ÷ the servers\' CPU per row)', `${f1(share * 100)} %`, '≥ 60 %', share >= 0.6);
        const w = d.cpuSecondsAfterWarmUp;
        if (w) add('a', `    its last ${f0(w.rows)} rows (V8's warm-up left out): streamer µs per row; share`, `${f1((w.streamer / w.rows) * 1e6)}; ${f1(limitShare(w, w.rows) * 100)} %`);
      }
      unaccounted('a', c);
    }
  }
  if (R.split) {
    const d = R.split;
    add('a', `  same, producer and consumer as two processes`, `${f0(d.rowsPerS)} rows/s`, '≥ 50,000 rows/s', d.rowsPerS >= 50_000);
    const c = d.cpuSeconds;
    const us = (x) => (x === null || x === undefined ? '?' : f1((x / d.rows) * 1e6));
    add('a', '    CPU µs per row: producer / consumer / PostgreSQL / Kafka / ClickHouse', `${us(c.producer)} / ${us(c.consumer)} / ${us(c.postgresql)} / ${us(c.kafka)} / ${us(c.clickhouse)}`);
  }
  if (R.stages) {
    const p = R.stages.producer;
    const c = R.stages.consumer;
    const pct = (x, tot) => `${f0(x)} ms (${f0((x / tot) * 100)} %)`;
    add('a', `producer alone (claim → publish → mark), ${f0(R.stages.rows)} rows`, `${f0(p.rowsPerS)} rows/s`);
    add('a', '  PostgreSQL claim', pct(p.pgClaimMs, p.ms));
    add('a', '  PostgreSQL mark + BEGIN/COMMIT', pct(p.pgMarkMs + p.pgBeginCommitMs, p.ms));
    add('a', '  Kafka publish (acks=all)', pct(p.kafkaPublishMs, p.ms));
    add('a', '  encode + other', pct(p.otherMs, p.ms));
    add('a', `consumer alone (topic → ClickHouse), ${f0(R.stages.rows)} rows`, `${f0(c.rowsPerS)} rows/s`);
    add('a', '  ClickHouse insert', pct(c.clickhouseInsertMs, c.ms));
    add('a', '  ClickHouse existing-ids query', pct(c.clickhouseExistingIdsMs, c.ms));
    add('a', '  Kafka fetch + decode + commit (overlaps)', pct(c.kafkaFetchDecodeCommitMs + c.sinkMappingMs, c.ms));
  }
  for (const l of R.latency ?? []) {
    const L = l.latencyMs;
    add('b', `latency, CONSUMER_FLUSH_MS=${l.flushMs}, ${f0(l.load.rate)} rows/s × ${l.seconds} s: p50 / p95 / p99 / max`, `${f1(L.p50)} / ${f1(L.p95)} / ${f1(L.p99)} / ${f1(L.max)} ms`, 'p50 ≤ 30, p99 ≤ 150 ms', L.p50 <= 30 && L.p99 <= 150);
    add('b', '  p50 split: commit → claimed / claimed → visible in ClickHouse', `${f1(l.commitToClaimMs.p50)} / ${f1(l.claimToVisibleMs.p50)} ms`);
    add('b', '  active parts at end / inserts per s / not seen / load average', `${l.partsAtEnd} / ${f1(l.insertsPerS)} / ${l.missing} / ${l.loadAverage}`);
    const c = l.coresBusy ?? {};
    add('b', '  cores busy: streamer / PostgreSQL / Kafka / ClickHouse / harness+load (machine)', `${f2(c.streamer)} / ${f2(c.postgresql)} / ${f2(c.kafka)} / ${f2(c.clickhouse)} / ${f2(c.harness)} (${f2(c.machineBusySeconds)})`);
  }
  if (R.soak) {
    const l = R.soak;
    add('b', `soak ${l.seconds} s at ${f0(l.load.rate)} rows/s: max parts sampled / "Too many parts" lines / p50 / p99`, `${l.maxPartsSampled} / ${l.tooManyPartsLogLines} / ${f1(l.latencyMs.p50)} / ${f1(l.latencyMs.p99)} ms`, 'bounded, 0', l.tooManyPartsLogLines === 0 && l.maxPartsSampled < 150);
  }
  if (R.trigger) {
    const t = R.trigger;
    add('c', `app INSERT/s, pgbench -c ${t.clients} -T ${t.seconds} ×${t.rounds}: with / without trigger`, `${f0(t.withTrigger)} / ${f0(t.withoutTrigger)} (${f1(t.overheadPct)} % fewer)`, '≤ 10 % fewer', t.overheadPct <= 10);
  }
  if (R.growth) {
    const g = R.growth;
    add('d', `claim 2000 (1,000 pending), p50: ${f0(g.sentRows)} sent rows / empty table`, `${f2(g.big.claimMs.p50)} / ${f2(g.empty.claimMs.p50)} ms (${f2(g.ratioP50)}×)`, '≤ 2×', g.ratioP50 <= 2);
    add('d', '  claim + mark of the 1,000, p50', `${f2(g.big.claimMarkMs.p50)} / ${f2(g.empty.claimMarkMs.p50)} ms`);
  }
  if (R.drain) add('e', 'peak RSS of streamer run during (a)', `${f0(R.drain.peakRssMB)} MB`, '≤ 200 MB', R.drain.peakRssMB <= 200);
  if (R.baseline) {
    const b = R.baseline;
    add('f', `seed design, ${f0(b.rows)} rows: producer / end to end`, `${f0(b.producerRowsPerS)} / ${f0(b.e2eRowsPerS)} rows/s`);
    if (R.drain) add('f', '  streamer ÷ seed, end to end', `${f0(R.drain.rowsPerS / b.e2eRowsPerS)}×`);
    if (R.stages) add('f', '  streamer ÷ seed, producer', `${f0(R.stages.producer.rowsPerS / b.producerRowsPerS)}×`);
  }
  if (R.updates) {
    const u = R.updates;
    for (const [k, label] of [
      ['update_flag', 'app UPDATE/s, flag mode'],
      ['update_log', 'app UPDATE/s, change-log mode'],
      ['insert_log', 'app INSERT/s, change-log mode'],
    ]) {
      const x = u[k];
      if (x) add('g', `${label}, pgbench -c ${u.clients} -T ${u.seconds} ×${u.rounds}: with / without triggers`, `${f0(x.withTriggers)} / ${f0(x.withoutTriggers)} (${f1(x.overheadPct)} % fewer)`);
    }
  }
  if (R['update-latency']) {
    const l = R['update-latency'];
    const L = l.latencyMs;
    add('h', `UPDATE → stored (the view's newest), ${f0(l.load.rate)} updates/s × ${l.seconds} s: p50 / p95 / p99 / max`, `${f1(L.p50)} / ${f1(L.p95)} / ${f1(L.p99)} / ${f1(L.max)} ms`);
    add('h', '  not seen / verify at the end', `${l.missing} / ${l.verifyOk ? 'OK' : 'FAILED'}`);
  }
  if (R.verify) {
    const v = R.verify;
    add('i', `streamer verify, ${f0(v.rows)} equal rows: seconds / peak RSS`, `${f1(v.seconds)} s / ${f0(v.peakRssMB)} MB (${v.ok ? 'OK' : 'FAILED'})`, '≤ 60 s', v.seconds <= 60 && v.ok);
  }
  if (R.wide) {
    const d = R.wide;
    add('j', `20-column table, ${f0(d.rows)} rows → ClickHouse (streamer run)`, `${f0(d.rowsPerS)} rows/s`);
    const c = d.cpuSeconds;
    const us = (x) => (x === null || x === undefined ? '?' : f1((x / d.rows) * 1e6));
    add('j', '  CPU µs per row: streamer / PostgreSQL / Kafka / ClickHouse', `${us(c.streamer)} / ${us(c.postgresql)} / ${us(c.kafka)} / ${us(c.clickhouse)}`);
    unaccounted('j', c);
  }
  if (R.adopt) {
    const a = R.adopt;
    add('k', `migrate on a ${f0(a.rows)}-row table under writes: total / capture install / backfill`, `${f1(a.migrateSeconds)} s / ${f0(a.captureInstallMs)} ms / ${f1(a.backfillSeconds)} s (${f0(a.backfillRows)} rows)`);
    add('k', '  app writes during migrate: p50 / p99 / max (before: p50 / max)', `${f1(a.appWritesDuringMigrateMs.p50)} / ${f1(a.appWritesDuringMigrateMs.p99)} / ${f1(a.appWritesDuringMigrateMs.max)} ms (${f1(a.appWritesBeforeMs.p50)} / ${f1(a.appWritesBeforeMs.max)} ms)`);
    add('k', '  then replicated by streamer run', `${f0(a.replicateSeconds)} s (${f0(a.replicateRowsPerS)} rows/s)`);
    const c = a.replicateCpuSeconds;
    if (c) {
      const us = (x) => (x === null || x === undefined ? '?' : f1((x / (a.replicateRowsPerS * a.replicateSeconds)) * 1e6));
      add('k', '  CPU µs per replicated row: streamer / PostgreSQL / Kafka / ClickHouse', `${us(c.streamer)} / ${us(c.postgresql)} / ${us(c.kafka)} / ${us(c.clickhouse)}`);
      unaccounted('k', c);
    }
  }
  if (R.sweep) {
    const w = R.sweep;
    for (const [mode, r] of [['flag mode', w.flagMode], ['change-log mode', w.changeLogMode]]) {
      add('l', `producer --sweep, ${f0(w.rows)} pending changes, ${mode}`, `${f0(r.rowsPerS)} rows/s`);
      add('l', '  CPU µs per row: streamer / PostgreSQL / Kafka; sampled peak RSS', `${f1(r.cpuUsPerRow.streamer)} / ${f1(r.cpuUsPerRow.postgresql)} / ${f1(r.cpuUsPerRow.kafka)}; ${f0(r.sampledPeakRssMB)} MB`);
      unaccounted('l', r.cpuSeconds);
    }
  }
  if (R.idle) {
    const i = R.idle;
    add('m', `idle streamer run, ${f0(i.seconds)} s: CPU (of a core) / its main thread's wake-ups a second`, `${f2(i.coreShare * 100)} % / ${f0(i.wakeUpsPerS)}`);
    if (i.nodeWarnings.length > 0) add('m', "  Node's warnings on its stderr", `${i.nodeWarnings.length}: ${i.nodeWarnings[0].slice(0, 60)}`);
  }
  if (R.peers) for (const [measure, value] of peersTableRows(R.peers)) add('peers', measure, value);
  const head = ['part', 'measure', 'value', 'target', 'met'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => `| ${r.map((c, i) => String(c).padEnd(w[i])).join(' | ')} |`;
  return [line(head), `|${w.map((x) => '-'.repeat(x + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

// ------------------------------------------------------------------ (g) updates (issue 10)

/** A config file turning user_login's capture into the change log (no flag): the mode of every other table. */
function logModeConfig() {
  const file = join(os.tmpdir(), `streamer-bench-log-mode-${process.pid}.json`);
  writeFileSync(file, JSON.stringify({ tables: { 'public.user_login': { flagColumn: null } } }));
  return file;
}

/**
 * pgbench of single-row UPDATEs (`bench/pgbench-update.sql`, random rows of 100,000) with the
 * capture's triggers and without them, alternated, for both capture modes; and the INSERT script
 * of part (c) in change-log mode (flag mode's insert is part c).
 */
async function partUpdates() {
  const rows = 100_000;
  const out = {};
  for (const mode of ['flag', 'log']) {
    const env = mode === 'log' ? { STREAMER_CONFIG: logModeConfig() } : {};
    const withT = await scratch(`upd_with_${mode}`, { env });
    const without = await scratch(`upd_without_${mode}`, { env });
    for (const s of [withT, without]) await fill(s, rows, { sent: true });
    await without.pg((c) => c.query(DROP_TRIGGERS));
    for (const [script, what] of [
      ['pgbench-update.sql', 'update'],
      ...(mode === 'log' ? [['pgbench-insert.sql', 'insert']] : []),
    ]) {
      const runs = { with: [], without: [] };
      for (let round = 0; round < O.pgbenchRounds; round++) {
        for (const [k, s] of [['with', withT], ['without', without]]) {
          log(`(g) pgbench ${what}, ${mode} mode, ${k} triggers, round ${round + 1}: -c ${O.pgbenchClients} -T ${O.pgbenchSeconds}`);
          runs[k].push(await pgbench(s.databaseUrl, script));
        }
      }
      const mean = (a) => a.reduce((x, y) => x + y.tps, 0) / a.length;
      const r = { withTriggers: mean(runs.with), withoutTriggers: mean(runs.without), runs };
      r.overheadPct = (1 - r.withTriggers / r.withoutTriggers) * 100;
      out[`${what}_${mode}`] = r;
      log(`(g) ${what}, ${mode} mode: ${r.withTriggers.toFixed(0)} vs ${r.withoutTriggers.toFixed(0)} tps: ${r.overheadPct.toFixed(1)} % fewer with the triggers`);
    }
  }
  return { clients: O.pgbenchClients, seconds: O.pgbenchSeconds, rounds: O.pgbenchRounds, tableRows: rows, ...out };
}

/**
 * UPDATE → visible in the deduplicated view: `bench/load.mjs --mode update` updates one row per
 * transaction at the rate (each update a row of its own, with a unique event_type), while
 * `streamer run` runs; the poller stamps each value the moment ClickHouse shows it. A row's newest
 * version is what `<table>_current` (FINAL) returns as soon as it is stored, so the poll reads the
 * stored rows of the last seconds (cheaper than FINAL every few ms).
 */
async function partUpdateLatency(seconds) {
  const n = Math.max(Math.round(O.rate * seconds) + 1000, 10_000);
  const s = await scratch('upd_latency');
  await fill(s, n);
  const st = startStreamer(['run'], { ...s.env, HTTP_PORT: '0' });
  const tmp = join(os.tmpdir(), `streamer-bench-upd-${process.pid}.tsv`);
  let polling = true;
  try {
    await st.waitFor((l) => l.msg === 'producer started', 60_000, '"producer started"');
    await waitCount(s, n, 300_000);
    log(`(h) update latency: ${O.rate} updates/s for ${seconds} s on ${n} replicated rows`);
    const seen = new Map();
    const poller = (async () => {
      while (polling) {
        const since = Math.floor(Date.now() / 1000) - 3;
        const text = await s.ch.query(`SELECT event_type FROM user_login WHERE _ingested_at >= toDateTime(${since}) AND startsWith(event_type, 'upd_') FORMAT TabSeparated`).catch(() => '');
        const at = nowMs();
        for (const line of text.split('\n')) if (line && !seen.has(line)) seen.set(line, at);
        await sleep(O.pollMs);
      }
    })();
    const meter = cpuMeter({ streamer: st.child.pid });
    const { summary: loadResult, lines: rows } = await runLoad(s, ['--mode', 'update', '--rows', String(n), '--rate', String(O.rate), '--seconds', String(seconds), '--out', tmp], tmp);
    const cpu = meter.read();
    const deadline = Date.now() + 30_000;
    while (seen.size < rows.length && Date.now() < deadline) await sleep(20);
    polling = false;
    await poller;
    const latencies = [];
    let missing = 0;
    for (const [token, , acked] of rows) {
      const at = seen.get(token);
      if (at) latencies.push(at - Number(acked));
      else missing++;
    }
    await st.stop();
    const v = JSON.parse(await runStreamerOnce(['verify', '--json'], { ...s.env, LOG_LEVEL: 'warn' }).catch((e) => JSON.stringify({ error: e.message })));
    const r = { seconds, rate: O.rate, rows: n, load: loadResult, latencyMs: summarize(latencies), missing, verifyOk: v.ok ?? false, cpuSeconds: cpu };
    log(`(h) update → view: p50 ${r.latencyMs.p50?.toFixed(1)} p99 ${r.latencyMs.p99?.toFixed(1)} ms; ${missing} not seen; verify ${r.verifyOk ? 'OK' : 'FAILED'}`);
    return r;
  } finally {
    polling = false;
    await st.stop();
    rmSync(tmp, { force: true });
  }
}

// ------------------------------------------------------------------ (i) verify on N rows (issue 10)

/**
 * `streamer verify` on N equal rows: PostgreSQL filled as the application would, ClickHouse with
 * the same rows written directly (one INSERT … SELECT FROM numbers()), then verify's seconds and
 * peak RSS (sampled every 100 ms).
 */
async function partVerify() {
  const n = O.verifyRows;
  const s = await scratch('verify');
  log(`(i) verify: filling ${n} rows on both sides`);
  await fill(s, n, { sent: true });
  const dt = String(await s.ch.query(`SELECT type FROM system.columns WHERE database = '${s.name}' AND table = 'user_login' AND name = 'event_time'`)).trim();
  const time = dt.includes('DateTime64')
    ? `toDateTime64('2024-01-01 00:00:00', 6, 'UTC') + toIntervalSecond(g) + toIntervalMicrosecond(g % 1000)`
    : `toDateTime('2024-01-01 00:00:00', 'UTC') + g`;
  await s.ch.query(
    `INSERT INTO user_login (id, username, event_type, event_time, _version, _deleted, _kafka_partition, _kafka_offset, _ingested_at)
     SELECT toInt32(g), concat('user_', toString(g)), ['login','logout','password_reset'][1 + g % 3], ${time}, 1, 0, 0, g, now()
       FROM (SELECT number + 1 AS g FROM numbers(${n}))`,
  );
  const st = startStreamer(['verify', '--json'], { ...s.env, LOG_LEVEL: 'warn' });
  const t0 = nowMs();
  const { code } = await st.exited;
  const seconds = (nowMs() - t0) / 1000;
  const mem = st.memory();
  await st.stop();
  const report = st.lines.find((l) => typeof l.ok === 'boolean' && Array.isArray(l.tables)) ?? {};
  const r = { rows: n, seconds, exitCode: code, ok: report.ok ?? false, peakRssMB: mem.sampledPeakRssMB, buckets: report.tables?.[0]?.buckets };
  log(`(i) verify of ${n} rows: ${seconds.toFixed(1)} s, peak RSS ${r.peakRssMB.toFixed(0)} MB, ${r.ok ? 'OK' : 'FAILED'}`);
  return r;
}

// ------------------------------------------------------------------ (j) a 20-column table (issue 11)

const WIDE_DDL = `
  CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
  CREATE TABLE wide (
    id bigint PRIMARY KEY, i1 int, i2 smallint, b1 bigint, d1 numeric(12,2), d2 numeric(18,4),
    f1 double precision, f2 real, t1 text, t2 text, t3 varchar(32), ok boolean, u uuid, day date,
    ts1 timestamptz, ts2 timestamp, doc jsonb, tags text[], m mood, n int)`;

/** N rows of the 20-column table → ClickHouse with `streamer run`, beside user_login's drain (part a). */
async function partWide() {
  const n = O.wideRows;
  const s = await scratch('wide', { migrate: false, env: { STREAMER_TABLES: 'wide' } });
  await s.pg((c) => c.query(WIDE_DDL));
  await runStreamerOnce(['migrate'], s.env);
  log(`(j) 20-column table: filling ${n} rows (change-log mode)`);
  await s.pg(async (c) => {
    await c.query('SET synchronous_commit = off');
    await insertInChunks(
      c,
      n,
      `INSERT INTO wide SELECT g, g % 100000, g % 30000, g * 1000003, (g % 100000) / 100.0, g / 10000.0, g / 7.0, g / 3.0,
                'text ' || g, md5(g::text), 'v' || (g % 1000), g % 2 = 0, md5(g::text)::uuid, date '2024-01-01' + (g % 3000)::int,
                timestamptz '2024-01-01 00:00:00+00' + g * interval '1.000001 second', timestamp '2024-01-01' + g * interval '1 second',
                jsonb_build_object('g', g, 'k', 'v'), ARRAY['a' || g % 10, 'b'], (ARRAY['sad','ok','happy']::mood[])[1 + g % 3], g
           FROM generate_series($1::bigint, $2::bigint) g`,
      { chunk: 500_000 },
    );
  });
  const st = startStreamer(['run'], { ...s.env, HTTP_PORT: '0' });
  try {
    const started = await st.waitFor((l) => l.msg === 'producer started', 60_000, '"producer started"');
    const meter = cpuMeter({ streamer: st.child.pid });
    const done = await waitCount(s, n, Math.max(300_000, n), 100, 'wide');
    const cpuSeconds = meter.read();
    const seconds = (done.at - started.at) / 1000;
    const mem = st.memory();
    await st.stop();
    const r = { rows: n, columns: 20, seconds, rowsPerS: n / seconds, cpuSeconds, peakRssMB: mem.peakRssMB };
    log(`(j) 20-column table: ${n} rows in ${seconds.toFixed(1)} s = ${Math.round(r.rowsPerS)} rows/s`);
    return r;
  } finally {
    await st.stop();
  }
}

// ------------------------------------------------------------------ (k) adopting a large table (issue 11)

/**
 * `streamer migrate` on an N-row table that an application keeps writing to (~200 single-row
 * statements/s, half inserts, half updates, each timed): how long its writes wait (the install's
 * lock), how long the backfill takes, and then how long `streamer run` takes to replicate it all.
 */
async function partAdopt() {
  const n = O.adoptRows;
  const s = await scratch('adopt', { migrate: false, env: { STREAMER_TABLES: 'adopt' } });
  log(`(k) adopt: filling ${n} rows`);
  await s.pg(async (c) => {
    await c.query('CREATE TABLE adopt (id bigserial PRIMARY KEY, payload text, n int, at timestamptz DEFAULT now())');
    await c.query('SET synchronous_commit = off');
    await insertInChunks(c, n, `INSERT INTO adopt (payload, n) SELECT 'row ' || g, g FROM generate_series($1::int, $2::int) g`);
    await c.query('VACUUM ANALYZE adopt');
  });
  // The application: single-row statements, each timed from send to acknowledgement.
  const app = new pg.Client({ connectionString: s.databaseUrl });
  await app.connect();
  const writes = [];
  let writing = true;
  const writer = (async () => {
    for (let i = 0; writing; i++) {
      const t0 = nowMs();
      if (i % 2 === 0) await app.query(`INSERT INTO adopt (payload, n) VALUES ('app', $1)`, [i]);
      else await app.query(`UPDATE adopt SET n = n + 1 WHERE id = $1`, [1 + ((i * 7919) % n)]);
      writes.push([t0, nowMs() - t0]);
      await sleep(5);
    }
  })();
  await sleep(2000);
  log('(k) adopt: streamer migrate while the application writes');
  const m0 = nowMs();
  const mig = startStreamer(['migrate'], s.env);
  const { code } = await mig.exited;
  const m1 = nowMs();
  if (code !== 0) throw new Error(`migrate exited ${code}: ${mig.lines.slice(-5).map((l) => JSON.stringify(l)).join('\n')}`);
  const installed = mig.lines.find((l) => l.msg === 'capture installed');
  const backfill = mig.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('backfill of'));
  await sleep(2000);
  writing = false;
  await writer;
  await app.end();
  const during = writes.filter(([t]) => t >= m0 && t <= m1).map(([, ms]) => ms);
  const before = writes.filter(([t]) => t < m0).map(([, ms]) => ms);
  const total = Number(await s.pg(async (c) => (await c.query('SELECT count(*) AS n FROM adopt')).rows[0].n));
  log(`(k) adopt: migrate ${((m1 - m0) / 1000).toFixed(1)} s; writes during it p50 ${summarize(during).p50?.toFixed(1)} max ${summarize(during).max?.toFixed(0)} ms; now replicating ${total} rows`);
  const st = startStreamer(['run'], { ...s.env, HTTP_PORT: '0' });
  try {
    const started = await st.waitFor((l) => l.msg === 'producer started', 60_000, '"producer started"');
    const meter = cpuMeter({ streamer: st.child.pid });
    const done = await waitCount(s, total, Math.max(600_000, total), 500, 'adopt');
    const cpuSeconds = meter.read();
    const r = {
      rows: n,
      migrateSeconds: (m1 - m0) / 1000,
      captureInstallMs: installed?.ms ?? null,
      backfillRows: backfill.at(-1)?.queued ?? null,
      backfillSeconds: backfill.length ? (backfill.at(-1).at - (installed?.at ?? m0)) / 1000 : null,
      appWritesBeforeMs: summarize(before),
      appWritesDuringMigrateMs: summarize(during),
      appWritesDuringMigrate: during.length,
      replicateSeconds: (done.at - started.at) / 1000,
      replicateRowsPerS: total / ((done.at - started.at) / 1000),
      // As the drain's (part a): from "producer started" to the last row counted (the count polls
      // every 500 ms here), per process.
      replicateCpuSeconds: cpuSeconds,
    };
    await st.stop();
    log(`(k) adopt: ${total} rows replicated in ${r.replicateSeconds.toFixed(0)} s`);
    return r;
  } finally {
    await st.stop();
  }
}

/**
 * (l) `streamer producer --sweep` alone on N pending changes, in each capture mode: flag mode
 * (user_login, filled as part a fills it) and change-log mode (a table `streamer migrate` adopted:
 * its backfill queued every row, as for every table without a flag column). Rows/s from the
 * producer's own "published N rows in S s" line; CPU of the streamer, PostgreSQL (its backends,
 * reaped ones included) and Kafka; peak RSS.
 */
async function partSweep() {
  const n = O.sweepRows;
  const h = { startStreamer, cpuMeter };
  const flag = await scratch('sweep');
  log(`(l) sweep: filling ${n} pending rows (flag mode)`);
  await fill(flag, n);
  const flagMode = await sweep(h, flag);
  log(`(l) sweep, flag mode: ${Math.round(flagMode.rowsPerS)} rows/s`);
  const changes = await scratch('sweeplog', { migrate: false, env: { STREAMER_TABLES: 'changes' } });
  log(`(l) sweep: filling ${n} rows and adopting them (change-log mode)`);
  await changes.pg(async (c) => {
    await c.query('CREATE TABLE changes (id bigint PRIMARY KEY, payload text, n int, price numeric(12,2), at timestamptz)');
    await c.query('SET synchronous_commit = off');
    await insertInChunks(c, n, `INSERT INTO changes SELECT g, 'row ' || g, g, g / 100.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series($1::int, $2::int) g`);
    await c.query('VACUUM ANALYZE changes');
  });
  await runStreamerOnce(['migrate'], changes.env); // installs the capture; its backfill queues every row
  await changes.pg((c) => c.query('VACUUM ANALYZE'));
  const changeLogMode = await sweep(h, changes);
  log(`(l) sweep, change-log mode: ${Math.round(changeLogMode.rowsPerS)} rows/s`);
  return { rows: n, flagMode, changeLogMode };
}

// ------------------------------------------------------------------ main

// Ctrl-C, or a plain `kill`: the scratch databases and topics go, and the peers' scratch
// PostgreSQL cluster and Kafka Connect stop (a SIGTERM left them running before).
let stopping = false; // Ctrl-C reaches this process twice: from the terminal, and from kafkajs-first.mjs
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    log(`${signal === 'SIGINT' ? 'interrupted' : 'terminated'}: dropping the scratch databases and topics`);
    await cleanupAll();
    process.exit(code);
  });
}

const started = new Date();
const result = { date: started.toISOString(), mode: quick ? 'quick' : 'full', options: { ...O, parts }, streamerDist: process.env.STREAMER_DIST ?? join(ROOT, 'dist'), benchNodeArgs: process.env.BENCH_NODE_ARGS ?? '', ...(await environment()), results: {}, errors: {} };
log(`mode ${result.mode}; parts ${parts.join(', ')}; ${result.machine.cores} cores, load ${result.machine.loadAverageAtStart.join(' ')}`);
const runPart = async (name, fn) => {
  if (!parts.includes(name)) return;
  try {
    const load = os.loadavg()[0];
    const r = await fn();
    for (const x of Array.isArray(r) ? r : [r]) x.loadAverage ??= Math.round(load * 100) / 100;
    result.results[name] = r;
  } catch (e) {
    result.errors[name] = e.message;
    log(`part ${name} failed: ${e.stack}`);
  } finally {
    await cleanupAll();
  }
};
await runPart('drain', () => partDrain('run'));
await runPart('split', () => partDrain('split'));
await runPart('stages', partStages);
await runPart('latency', async () => {
  const out = [];
  for (const f of O.flushMs) {
    const load = os.loadavg()[0];
    const r = await partLatency(f, O.latencySeconds);
    r.loadAverage = Math.round(load * 100) / 100;
    out.push(r);
    await cleanupAll();
  }
  return out;
});
await runPart('trigger', partTrigger);
await runPart('growth', partGrowth);
await runPart('baseline', partBaseline);
await runPart('updates', partUpdates);
await runPart('update-latency', () => partUpdateLatency(O.latencySeconds));
await runPart('verify', partVerify);
await runPart('wide', partWide);
await runPart('adopt', partAdopt);
await runPart('sweep', partSweep);
await runPart('idle', partIdle);
// Off by default (--peers or --only peers): fetches jars, starts a JVM and a PostgreSQL cluster.
await runPart('peers', () =>
  partPeers({
    O: { rows: O.peersRows, seconds: O.peersSeconds, rate: O.rate, pollMs: O.pollMs },
    S,
    log,
    scratch,
    fill,
    startStreamer,
    runStreamerOnce,
    runLoad,
    cpuMeter,
    onCleanup: (fn) => scratches.push({ cleanup: fn }),
  }),
);
// The soak runs at the streamer's default CONSUMER_FLUSH_MS (2) unless --env sets one.
await runPart('soak', () => partLatency(Number(O.extraEnv.CONSUMER_FLUSH_MS ?? 2), O.soakSeconds, { soak: true }));
result.durationSeconds = (Date.now() - started.getTime()) / 1000;
result.loadAverageAtEnd = os.loadavg().map((l) => Math.round(l * 100) / 100);

const printed = table(result);
result.table = printed;
mkdirSync(join(BENCH, 'results'), { recursive: true });
const file = join(BENCH, 'results', `${started.toISOString().replace(/[:.]/g, '-')}-${result.mode}${opt.only || opt.skip || opt.soak || opt.peers ? `-${parts.join('+')}` : ''}.json`);
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(
  `\nstreamer benchmark, ${result.mode}, ${result.date}\n` +
    `${result.machine.cores} × ${result.machine.cpuModel}, ${result.machine.memoryGiB} GiB; load average ${result.machine.loadAverageAtStart.join(' ')} → ${result.loadAverageAtEnd.join(' ')}\n` +
    `PostgreSQL ${result.versions.postgresql} (fsync=${result.postgresqlSettings.fsync}), Kafka ${result.versions.kafka}, ClickHouse ${result.versions.clickhouse} (parts on ${result.clickhouseStorage?.fileSystem ?? '?'}), Node ${result.versions.node}\n\n` +
    `${printed}\n` +
    (Object.keys(result.errors).length ? `\nFAILED parts: ${JSON.stringify(result.errors)}\n` : '') +
    `\nfigures written to ${file} (${Math.round(result.durationSeconds)} s)\n`,
);
process.exitCode = Object.keys(result.errors).length ? 1 : 0;
setTimeout(() => process.exit(), 2000).unref();
