// The benchmark's `peers` part (bench/README.md, "peers"): the two tools users would pick instead
// of the streamer, set up on the local stack and measured beside it in the same run.
//
//   Debezium (PostgreSQL connector, pgoutput) in Kafka Connect standalone, against a scratch
//   PostgreSQL 15 cluster with wal_level=logical (the stack's runs wal_level=replica and is never
//   restarted): (a) a backlog → Kafka (its initial snapshot vs `streamer producer --sweep`), (b)
//   commit → message in Kafka at a steady insert rate (vs `streamer producer`), both on that cluster.
//   ClickHouse's Kafka engine (a Kafka table + a materialized view): (c) a topic of streamer
//   messages → ClickHouse (vs `streamer consumer`), (d) message appended → visible in ClickHouse.
//
// run.mjs calls partPeers(h) with its helpers (scratch databases, fill, the streamer as a child,
// the load process, the CPU meter) and prints peersTableRows(result).
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { nowMs, readTopicTimes, sleep, suffix, summarize, withDatabase } from './common.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = join(BENCH, '..');
const POM = join(BENCH, 'peers', 'pom.xml');
// Jars, scratch clusters and Connect's files: under .stack/ (git-ignored), fetched once.
const CACHE = join(ROOT, '.stack', 'peers');
const JARS = join(CACHE, 'jars');
const PG_BIN = process.env.PEERS_PG_BIN || '/usr/lib/postgresql/15/bin';
const pomProp = (name) => new RegExp(`<${name.replace('.', '\\.')}>([^<]+)</`).exec(readFileSync(POM, 'utf8'))[1];
const DEBEZIUM = pomProp('debezium.version');
const CONNECT = pomProp('kafka.version');

/**
 * h: { O: { rows, seconds, rate, pollMs }, S, log, scratch, fill, startStreamer, runStreamerOnce,
 * runLoad, cpuMeter, onCleanup } — see the call in run.mjs. Each measurement is tried on its own:
 * one that fails is reported under `errors` and the others still run.
 */
export async function partPeers(h) {
  const k = kafkaTools(h.S);
  const out = { rows: h.O.rows, seconds: h.O.seconds, rate: h.O.rate, versions: { debezium: DEBEZIUM, kafkaConnect: CONNECT }, errors: {} };
  // PEERS_STEPS=liveToKafka,… runs only those measurements (while working on one of them)
  const only = process.env.PEERS_STEPS?.split(',');
  // PEERS_TOOLS=streamer,… runs only those tools in the live measurements (an A/B of two builds)
  const tools = process.env.PEERS_TOOLS?.split(',');
  const wanted = (name) => !tools || tools.some((t) => name.startsWith(t));
  const step = async (name, fn) => {
    if (only && name !== 'setup' && !only.includes(name)) return;
    try {
      out[name] = await fn();
    } catch (e) {
      out.errors[name] = e.message;
      h.log(`(peers) ${name} failed: ${e.stack}`);
    }
  };
  out.partitions = await k.defaultPartitions();

  // ---- Debezium, on a scratch cluster with wal_level=logical
  let cluster = null;
  if (!only || only.some((x) => ['backlogToKafka', 'liveToKafka'].includes(x))) await step('setup', async () => {
    ensureJars(h);
    cluster = await startCluster(h);
    return { postgresql: cluster.version, port: cluster.port, jars: JARS };
  });
  if (cluster) {
    await step('backlogToKafka', () => backlogToKafka(h, k, cluster));
    await step('liveToKafka', async () => {
      const runs = {};
      for (const [name, variant] of [
        ['streamer', { streamer: true }],
        ['debezium', {}],
        ['debeziumPoll10', { pollIntervalMs: 10 }],
      ]) {
        if (!wanted(name)) continue;
        runs[name] = await liveToKafka(h, k, cluster, variant).catch((e) => ({ error: e.message }));
        if (runs[name].error) h.log(`(peers b) ${name} failed: ${runs[name].error}`);
      }
      return runs;
    });
    await cluster.stop();
  }

  // ---- ClickHouse's Kafka engine, on the stack
  await step('topicToClickhouse', () => backlogToClickhouse(h, k));
  await step('liveToClickhouse', async () => {
    const runs = {};
    for (const [name, variant] of [
      ['streamer', { streamer: true }],
      ['kafkaEngine', {}],
      ['kafkaEngineBlock1000', { maxBlockSize: 1000 }],
    ]) {
      if (!wanted(name)) continue;
      runs[name] = await liveToClickhouse(h, k, variant).catch((e) => ({ error: e.message }));
      if (runs[name].error) h.log(`(peers d) ${name} failed: ${runs[name].error}`);
    }
    return runs;
  });
  if (!Object.keys(out.errors).length) delete out.errors;
  return out;
}

// ------------------------------------------------------------------ jars and the scratch cluster

/** Connect's runtime and Debezium's plugin archive from Maven Central, once (like scripts/stack.sh). */
function ensureJars(h) {
  const marker = join(JARS, 'plugins', 'debezium-connector-postgres', `debezium-connector-postgres-${DEBEZIUM}.jar`);
  if (existsSync(marker) && existsSync(join(JARS, 'connect', `connect-runtime-${CONNECT}.jar`))) return;
  h.log(`(peers) fetching Kafka Connect ${CONNECT} and Debezium ${DEBEZIUM} from Maven Central into ${JARS}`);
  rmSync(JARS, { recursive: true, force: true });
  mkdirSync(CACHE, { recursive: true });
  const r = spawnSync('mvn', ['-B', '-q', '-f', POM, 'dependency:copy-dependencies@worker', 'dependency:unpack-dependencies@plugin', `-Dpeers.dir=${JARS}`], { encoding: 'utf8' });
  writeFileSync(join(CACHE, 'mvn.log'), `${r.stdout ?? ''}${r.stderr ?? ''}`);
  if (r.status !== 0 || !existsSync(marker)) throw new Error(`mvn could not fetch the jars (exit ${r.status ?? r.error?.message}): ${`${r.stdout}${r.stderr}`.trim().slice(-1500)}`);
}

/** A shell command as the postgres user when we are root (initdb refuses root), else as ourselves. */
function asPostgres(cmd) {
  const r = process.getuid?.() === 0 ? spawnSync('su', ['postgres', '-s', '/bin/sh', '-c', cmd], { encoding: 'utf8' }) : spawnSync('/bin/sh', ['-c', cmd], { encoding: 'utf8' });
  return { ok: r.status === 0, text: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

function portFree(port) {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => res(true)));
  });
}

/**
 * A PostgreSQL 15 cluster of our own for the part's duration: initdb, wal_level=logical, fsync=off
 * and max_connections=200 like the stack's; stopped and deleted by cleanup (also on Ctrl-C).
 */
async function startCluster(h) {
  let port = 5442;
  while (!(await portFree(port))) port++;
  let dir = join(CACHE, `pg-${suffix()}`);
  mkdirSync(dir, { recursive: true });
  const root = process.getuid?.() === 0;
  if (root && !asPostgres(`cd '${dir}'`).ok) {
    // the postgres user cannot reach the checkout (e.g. under /root): as scripts/stack.sh does
    rmSync(dir, { recursive: true, force: true });
    dir = join('/var/tmp', `streamer-peers-pg-${suffix()}`);
    mkdirSync(dir, { recursive: true });
  }
  if (root) spawnSync('chown', ['postgres', dir]);
  let started = false;
  const stop = async () => {
    if (started) asPostgres(`'${PG_BIN}/pg_ctl' -D '${dir}/data' -m immediate -w -t 60 stop`);
    started = false;
    rmSync(dir, { recursive: true, force: true });
  };
  h.onCleanup(stop);
  const init = asPostgres(`'${PG_BIN}/initdb' -D '${dir}/data' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8`);
  if (!init.ok) throw new Error(`initdb failed: ${init.text.slice(-1000)}`);
  const opts = `-p ${port} -k '${dir}' -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off -c wal_level=logical`;
  const st = asPostgres(`'${PG_BIN}/pg_ctl' -D '${dir}/data' -l '${dir}/server.log' -w -t 60 -o "${opts}" start`);
  if (!st.ok) throw new Error(`the scratch PostgreSQL did not start: ${st.text.slice(-500)} ${readFileSync(join(dir, 'server.log'), 'utf8').slice(-1000)}`);
  started = true;
  const url = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
  const admin = async (fn, db = 'postgres') => {
    const c = new pg.Client({ connectionString: withDatabase(url, db) });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  const version = await admin(async (c) => (await c.query('SHOW server_version')).rows[0].server_version);
  const pid = Number(readFileSync(join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  h.log(`(peers) scratch PostgreSQL ${version} (wal_level=logical, fsync=off) on 127.0.0.1:${port}, ${dir}`);
  return { port, url, pid, dir, version, admin, stop };
}

/** The bench's scratch (ClickHouse database, topic, group), with its PostgreSQL database on the cluster. */
async function onCluster(h, cluster, tag) {
  const s = await h.scratch(tag, { migrate: false });
  await cluster.admin((c) => c.query(`CREATE DATABASE ${s.name}`));
  const url = withDatabase(cluster.url, s.name);
  s.databaseUrl = url;
  s.env.DATABASE_URL = url;
  s.pg = async (fn) => cluster.admin(fn, s.name);
  await h.runStreamerOnce(['migrate'], s.env);
  return s;
}

// ------------------------------------------------------------------ Kafka and Kafka Connect

function kafkaTools(S) {
  const kafka = new Kafka({ brokers: S.kafkaBrokers.split(','), logLevel: logLevel.NOTHING });
  const withAdmin = async (fn) => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      return await fn(admin);
    } finally {
      await admin.disconnect().catch(() => {});
    }
  };
  return {
    kafka,
    withAdmin,
    /** The broker's num.partitions: what a topic the streamer creates itself gets. */
    defaultPartitions: () =>
      withAdmin(async (a) => {
        const { brokers } = await a.describeCluster();
        const r = await a.describeConfigs({ resources: [{ type: 4, name: String(brokers[0].nodeId), configNames: ['num.partitions'] }], includeSynonyms: false });
        return Number(r.resources[0].configEntries[0].configValue);
      }),
    /** message.timestamp.type=LogAppendTime: a message's timestamp is the moment the broker appended it. */
    createTopic: (topic, partitions) =>
      withAdmin((a) => a.createTopics({ topics: [{ topic, numPartitions: partitions, configEntries: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }] }], waitForLeaders: true })),
    /** Polls the topic's end offsets (summed over partitions) until `n`; the moment it got there. */
    waitEndOffsets: (topic, n, timeoutMs, intervalMs = 100) =>
      withAdmin(async (a) => {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const offs = await a.fetchTopicOffsets(topic).catch(() => []);
          const total = offs.reduce((x, o) => x + Number(o.high), 0);
          if (total >= n) return { count: total, at: nowMs() };
          if (Date.now() > deadline) throw new Error(`${topic} holds ${total} of ${n} messages after ${timeoutMs} ms`);
          await sleep(intervalMs);
        }
      }),
    /** A new group's committed offsets at the start of every partition (ClickHouse 18.16 starts a new group at the end). */
    groupFromStart: (groupId, topic) => withAdmin((a) => a.resetOffsets({ groupId, topic, earliest: true })),
    deleteGroups: (groups) => withAdmin((a) => a.deleteGroups(groups)).catch(() => {}),
    /** Every message's timestamp by row id (streamer: `id`; Debezium: `after.id`). */
    timestampsById(topic, expected) {
      const idOf = (m) => {
        if (!m.value) return undefined;
        const v = JSON.parse(m.value.toString());
        return v.id ?? v.after?.id;
      };
      return readTopicTimes({ brokers: S.kafkaBrokers.split(','), topic, groupId: `${topic}-peers-reader`, expected, idOf });
    },
  };
}

/**
 * Kafka Connect standalone with one Debezium PostgreSQL connector. Its log (stdout) is kept in
 * the run's folder, and every line is stamped on arrival so that the harness can wait for one.
 */
async function startConnect(h, s, cluster, { prefix, slot, snapshotMode, pollIntervalMs }) {
  const dir = join(CACHE, `connect-${suffix()}`);
  mkdirSync(dir, { recursive: true });
  let restPort = 18083;
  while (!(await portFree(restPort))) restPort++;
  const props = (o) => `${Object.entries(o).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`).join('\n')}\n`;
  writeFileSync(
    join(dir, 'worker.properties'),
    props({
      'bootstrap.servers': h.S.kafkaBrokers,
      'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'key.converter.schemas.enable': false,
      'value.converter.schemas.enable': false,
      'offset.storage.file.filename': join(dir, 'offsets'),
      // The connector in a folder of its own under plugin.path: Connect loads it in its own
      // class loader (its archive brings connect-api/kafka-clients jars of another version).
      'plugin.path': join(JARS, 'plugins'),
      // Every plugin here has a ServiceLoader manifest: skip the slow class-path scan.
      'plugin.discovery': 'service_load',
      listeners: `http://127.0.0.1:${restPort}`,
    }),
  );
  writeFileSync(
    join(dir, 'connector.properties'),
    props({
      name: `peers-${slot}`,
      'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
      'tasks.max': 1,
      'plugin.name': 'pgoutput',
      'database.hostname': '127.0.0.1',
      'database.port': cluster.port,
      'database.user': 'postgres',
      'database.password': 'postgres',
      'database.dbname': s.name,
      'topic.prefix': prefix,
      'table.include.list': 'public.user_login',
      'slot.name': slot,
      'publication.name': slot,
      // a publication for the captured table only (the default, all_tables, is FOR ALL TABLES)
      'publication.autocreate.mode': 'filtered',
      'snapshot.mode': snapshotMode,
      'poll.interval.ms': pollIntervalMs,
    }),
  );
  const java = ['-Xms256m', '-Xmx1g', '-XX:+UseG1GC', '-Djava.awt.headless=true', `-Dlog4j2.configurationFile=${join(BENCH, 'peers', 'connect-log4j2.properties')}`];
  const child = spawn('java', [...java, '-cp', `${join(JARS, 'connect')}/*`, 'org.apache.kafka.connect.cli.ConnectStandalone', 'worker.properties', 'connector.properties'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const logFile = createWriteStream(join(dir, 'connect.log'));
  const lines = [];
  const waiters = new Set();
  let rest = '';
  const onData = (d) => {
    logFile.write(d);
    rest += d;
    let i;
    while ((i = rest.indexOf('\n')) >= 0) {
      const line = { text: rest.slice(0, i), at: nowMs() };
      rest = rest.slice(i + 1);
      lines.push(line);
      for (const w of waiters) if (w.re.test(line.text)) w.resolve(line);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const errors = () => lines.filter((l) => / (ERROR|FATAL) /.test(l.text)).map((l) => l.text);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(t);
    logFile.end();
    // the slot outlives the connector (slot.drop.on.stop=false): drop it so it retains no WAL
    await cluster.admin((c) => c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [slot]), s.name).catch(() => {});
  };
  h.onCleanup(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    child,
    lines,
    dir,
    errors,
    stop,
    spawnedAt: nowMs(),
    waitFor(re, timeoutMs, what) {
      const found = lines.find((l) => re.test(l.text));
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { re, resolve: (l) => (clearTimeout(timer), waiters.delete(w), resolve(l)) };
        const timer = setTimeout(() => (waiters.delete(w), reject(new Error(`Kafka Connect: no ${what} within ${timeoutMs} ms; errors: ${errors().slice(-3).join(' | ')}`))), timeoutMs);
        waiters.add(w);
        exited.then(({ code }) => reject(new Error(`Kafka Connect exited (${code}) before ${what}: ${errors().slice(-3).join(' | ') || lines.slice(-5).map((l) => l.text).join(' | ')}`)));
      });
    },
  };
}

/** CPU seconds of this process's reaped children (a finished `streamer producer --sweep`). */
function reapedChildrenCpu() {
  const t = readFileSync('/proc/self/stat', 'utf8');
  const f = t.slice(t.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / 100;
}

const warmSeconds = (h) => Math.min(10, Math.max(3, Math.round(h.O.seconds / 3)));

/** Per-row latency (`lat(id, ackedMs)`, for the rows `has(id)` found) of load.mjs's lines: summary, p50 per fifth, missing. */
function latencyOf(lines, has, lat) {
  const all = [];
  const bySend = [];
  let missing = 0;
  for (const [id, sent, acked] of lines) {
    if (!has(id)) {
      missing++;
      continue;
    }
    const v = lat(id, Number(acked));
    all.push(v);
    bySend.push([Number(sent), v]);
  }
  return { latencyMs: summarize(all), p50ByFifthMs: p50ByFifth(bySend), tail: tailOf(lines, has, lat), missing };
}

/**
 * Where the slow rows (over 10 ms) fall: how many seconds of the load hold them, the share in the
 * five worst seconds, and the share whose own INSERT (sent → COMMIT acknowledged) also took over
 * 10 ms — a stall of the machine delays the application as much as the pipeline.
 */
function tailOf(lines, has, lat) {
  const bySecond = new Map();
  let slow = 0;
  let slowInsert = 0;
  let t0 = Infinity;
  for (const [, sent] of lines) t0 = Math.min(t0, Number(sent));
  for (const [id, sent, acked] of lines) {
    if (!has(id) || lat(id, Number(acked)) <= 10) continue;
    slow++;
    if (Number(acked) - Number(sent) > 10) slowInsert++;
    const s = Math.floor((Number(sent) - t0) / 1000);
    bySecond.set(s, (bySecond.get(s) ?? 0) + 1);
  }
  const worst5 = [...bySecond.values()].sort((a, b) => b - a).slice(0, 5).reduce((n, c) => n + c, 0);
  return { over10ms: slow, seconds: bySecond.size, shareInWorst5Seconds: slow ? worst5 / slow : 0, shareWithSlowInsert: slow ? slowInsert / slow : 0 };
}

/** p50 of each fifth of the load (by send time): a latency that keeps growing means a tool falling behind. */
function p50ByFifth(pairs) {
  if (!pairs.length) return [];
  const t0 = pairs.reduce((m, p) => Math.min(m, p[0]), Infinity);
  const t1 = pairs.reduce((m, p) => Math.max(m, p[0]), -Infinity);
  const w = (t1 - t0) / 5 || 1;
  const bins = [[], [], [], [], []];
  for (const [t, v] of pairs) bins[Math.min(4, Math.floor((t - t0) / w))].push(v);
  return bins.map((b) => summarize(b).p50);
}

const perRowUs = (cpu, n) => Object.fromEntries(Object.entries(cpu).filter(([k, v]) => typeof v === 'number' && !['wallSeconds', 'machineCores'].includes(k)).map(([k, v]) => [k, Math.round((v / n) * 1e7) / 10]));
const coresBusy = (cpu) => Object.fromEntries(Object.entries(cpu).filter(([k, v]) => typeof v === 'number' && !['wallSeconds', 'machineCores'].includes(k)).map(([k, v]) => [k, Math.round((v / cpu.wallSeconds) * 100) / 100]));

/** `streamer producer --sweep` to its end: its own "published N rows in S s" line, wall time and CPU (also bench/run.mjs's part l). */
export async function sweep(h, s, cpuExtra = {}) {
  const meter = h.cpuMeter(cpuExtra);
  const cpu0 = reapedChildrenCpu();
  const t0 = nowMs();
  const st = h.startStreamer(['producer', '--sweep'], { ...s.env, LOG_LEVEL: 'warn' });
  const { code } = await st.exited;
  const wall = (nowMs() - t0) / 1000;
  const cpu = meter.read();
  cpu.streamer = reapedChildrenCpu() - cpu0;
  if (typeof cpu.unaccountedSeconds === 'number') cpu.unaccountedSeconds -= cpu.streamer; // measured after it exited, not by the meter
  const { sampledPeakRssMB } = st.memory(); // sampled every 100 ms: the process has exited
  await st.stop();
  const line = st.lines.find((l) => /^published \d+ rows in/.test(l.msg ?? ''));
  const m = line && /^published (\d+) rows in ([\d.]+) s/.exec(line.msg);
  if (code !== 0 || !m) throw new Error(`streamer producer --sweep exited ${code}: ${st.lines.slice(-5).map((l) => JSON.stringify(l)).join('\n')}`);
  const rows = Number(m[1]);
  const seconds = Number(m[2]);
  return { rows, seconds, rowsPerS: rows / seconds, wallSecondsIncludingStartup: wall, cpuSeconds: cpu, cpuUsPerRow: perRowUs(cpu, rows), sampledPeakRssMB };
}

// ------------------------------------------------------------------ (a) backlog → Kafka

/**
 * N rows in user_login → Kafka: Debezium's initial snapshot (from its "Snapshot step 1" log line
 * to the topic's end offsets summing to N), then `streamer producer --sweep` on the same rows
 * (Debezium only read them: they are still pending for the streamer).
 */
async function backlogToKafka(h, k, cluster) {
  const n = h.O.rows;
  const s = await onCluster(h, cluster, 'peers_dbz');
  h.log(`(peers a) filling ${n} rows on the scratch cluster`);
  await h.fill(s, n);
  const prefix = `${s.topic}_dbz`;
  const topic = `${prefix}.public.user_login`;
  await k.createTopic(topic, await k.defaultPartitions());
  h.log(`(peers a) Debezium ${DEBEZIUM}: initial snapshot of ${n} rows`);
  const slot = `peers_${suffix()}`;
  const conn = await startConnect(h, s, cluster, { prefix, slot, snapshotMode: 'initial' });
  const meter = h.cpuMeter({ postgresql: cluster.pid, jvm: conn.child.pid });
  let debezium;
  try {
    const started = await conn.waitFor(/Snapshot step 1 - Preparing/, 180_000, '"Snapshot step 1"');
    const atStart = meter.read();
    const done = await k.waitEndOffsets(topic, n, Math.max(600_000, n));
    const cpu = meter.read();
    // the snapshot's own CPU: what the JVM and PostgreSQL used since the snapshot started
    const snapCpu = Object.fromEntries(Object.keys(cpu).map((key) => [key, typeof cpu[key] === 'number' && typeof atStart[key] === 'number' ? cpu[key] - atStart[key] : cpu[key]]));
    snapCpu.wallSeconds = cpu.wallSeconds - atStart.wallSeconds;
    snapCpu.machineBusySeconds = cpu.machineBusySeconds - atStart.machineBusySeconds;
    const seconds = (done.at - started.at) / 1000;
    debezium = {
      rows: n,
      messages: done.count,
      seconds,
      rowsPerS: n / seconds,
      startupSeconds: (started.at - conn.spawnedAt) / 1000,
      wallSecondsIncludingStartup: (done.at - conn.spawnedAt) / 1000,
      snapshotCompletedLogAfterSeconds: ((conn.lines.find((l) => /Snapshot completed/.test(l.text))?.at ?? NaN) - started.at) / 1000,
      cpuSeconds: snapCpu,
      cpuUsPerRow: perRowUs(snapCpu, n),
      jvmCpuSecondsStartup: atStart.jvm,
    };
    h.log(`(peers a) Debezium snapshot: ${n} rows in ${seconds.toFixed(2)} s = ${Math.round(debezium.rowsPerS)} rows/s (JVM start-up ${debezium.startupSeconds.toFixed(1)} s)`);
  } finally {
    await conn.stop();
  }
  h.log(`(peers a) streamer producer --sweep on the same ${n} rows`);
  const streamer = await sweep(h, s, { postgresql: cluster.pid });
  h.log(`(peers a) streamer sweep: ${Math.round(streamer.rowsPerS)} rows/s`);
  return { rows: n, debezium, streamer, ratio: streamer.rowsPerS / debezium.rowsPerS };
}

// ------------------------------------------------------------------ (b) commit → Kafka

/**
 * Single-row INSERTs at the rate (bench/load.mjs) while the streamer producer or Debezium runs;
 * per row, the broker's append time (the topic's LogAppendTime) − the commit's acknowledgement.
 * Each run in a database and topic of its own; one row first (the tool is up), then a warm-up
 * load (warmSeconds, its figures kept apart as `cold`): a JVM just started compiles while it
 * streams, which on two cores put Debezium seconds behind in its first seconds.
 */
async function liveToKafka(h, k, cluster, variant) {
  const name = variant.streamer ? 'streamer producer' : `Debezium${variant.pollIntervalMs ? ` poll.interval.ms=${variant.pollIntervalMs}` : ' (defaults)'}`;
  const s = await onCluster(h, cluster, variant.streamer ? 'peers_live_st' : 'peers_live_dbz');
  const prefix = `${s.topic}_dbz`;
  const topic = variant.streamer ? s.topic : `${prefix}.public.user_login`;
  await k.createTopic(topic, await k.defaultPartitions());
  const slot = `peers_${suffix()}`;
  const proc = variant.streamer
    ? h.startStreamer(['producer'], s.env)
    : await startConnect(h, s, cluster, { prefix, slot, snapshotMode: 'no_data', pollIntervalMs: variant.pollIntervalMs });
  const tmp = join(os.tmpdir(), `streamer-bench-peers-${suffix()}.tsv`);
  try {
    // Debezium streams from where its slot starts: a row committed before the slot exists is
    // never sent. Its streaming connection holds the slot (active) once it is up.
    if (!variant.streamer) await waitSlotActive(s, slot, proc, 180_000);
    await s.pg((c) => c.query(`INSERT INTO user_login (username, event_type, event_time) VALUES ('warm-up', 'login', now())`));
    await k.waitEndOffsets(topic, 1, 60_000, 20);
    h.log(`(peers b) ${name}: warm-up, ${h.O.rate} rows/s for ${warmSeconds(h)} s`);
    const warm = await h.runLoad(s, ['--rate', String(h.O.rate), '--seconds', String(warmSeconds(h)), '--out', tmp], tmp);
    await k.waitEndOffsets(topic, 1 + warm.lines.length, 120_000, 20);
    h.log(`(peers b) ${name}: ${h.O.rate} rows/s for ${h.O.seconds} s`);
    const meter = h.cpuMeter({ postgresql: cluster.pid, [variant.streamer ? 'streamer' : 'jvm']: proc.child.pid });
    const { summary, lines } = await h.runLoad(s, ['--rate', String(h.O.rate), '--seconds', String(h.O.seconds), '--out', tmp], tmp);
    const cpu = meter.read();
    const expected = 1 + warm.lines.length + lines.length;
    await k.waitEndOffsets(topic, expected, 60_000, 20).catch((e) => h.log(`(peers b) ${e.message}`));
    const ts = await k.timestampsById(topic, expected);
    const stamp = (id) => ts.get(Number(id));
    const r = { tool: name, pollIntervalMs: variant.pollIntervalMs, load: summary, ...latencyOf(lines, stamp, (id, acked) => stamp(id) - acked), coresBusy: coresBusy(cpu) };
    r.cold = { seconds: warmSeconds(h), ...latencyOf(warm.lines, stamp, (id, acked) => stamp(id) - acked) };
    if (!variant.streamer) r.connectErrors = proc.errors().slice(-5);
    h.log(`(peers b) ${name}: commit → Kafka p50 ${r.latencyMs.p50?.toFixed(1)} p99 ${r.latencyMs.p99?.toFixed(1)} ms; ${r.missing} missing`);
    return r;
  } finally {
    await proc.stop();
    rmSync(tmp, { force: true });
  }
}

async function waitSlotActive(s, slot, conn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await s.pg((c) => c.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]));
    if (r.rows[0]?.active) return;
    if (conn.child.exitCode !== null) throw new Error(`Kafka Connect exited (${conn.child.exitCode}): ${conn.errors().slice(-3).join(' | ')}`);
    if (Date.now() > deadline) throw new Error(`Debezium's slot ${slot} is not active after ${timeoutMs} ms: ${conn.errors().slice(-3).join(' | ')}`);
    await sleep(50);
  }
}

// ------------------------------------------------------------------ ClickHouse's Kafka engine

// The Kafka table's columns are the message's fields. event_time is read as a String: the
// streamer writes microseconds ("2024-01-01 00:00:01.000123") and 18.16's JSONEachRow cannot
// parse them into a DateTime — the engine then retries the same message forever, stuck. The view
// cuts them off (as the streamer's own sink does on 18.16, whose DateTime has whole seconds).
const KAFKA_COLUMNS = `id Int32, username Nullable(String), event_type Nullable(String), event_time Nullable(String), _op String, _version UInt64`;
const TARGET = `CREATE TABLE kafka_user_login (id Int32, username Nullable(String), event_type Nullable(String), event_time Nullable(DateTime('UTC')), _version UInt64, _deleted UInt8)
  ENGINE = ReplacingMergeTree(_version) ORDER BY id`;

/**
 * The Kafka table and its materialized view into kafka_user_login, in the scratch ClickHouse
 * database. Consumption starts when the view exists. A new group starts at the topic's end in
 * 18.16 (librdkafka's default), so its offsets are first set to the start.
 */
async function kafkaEngine(h, k, s, { maxBlockSize } = {}) {
  const group = `${s.topic}-ch`;
  await k.groupFromStart(group, s.topic);
  await s.ch.query(TARGET);
  const settings = [`kafka_broker_list = '${h.S.kafkaBrokers}'`, `kafka_topic_list = '${s.topic}'`, `kafka_group_name = '${group}'`, `kafka_format = 'JSONEachRow'`];
  if (maxBlockSize) settings.push(`kafka_max_block_size = ${maxBlockSize}`);
  await s.ch.query(`CREATE TABLE kafka_queue (${KAFKA_COLUMNS}) ENGINE = Kafka SETTINGS ${settings.join(', ')}`);
  const t0 = nowMs();
  await s.ch.query(`CREATE MATERIALIZED VIEW kafka_view TO kafka_user_login AS
    SELECT id, username, event_type, toDateTime(substring(event_time, 1, 19), 'UTC') AS event_time, _version, _op = 'delete' AS _deleted FROM kafka_queue`);
  let dropped = false;
  const drop = async () => {
    if (dropped) return;
    dropped = true;
    await s.ch.query('DROP TABLE IF EXISTS kafka_view').catch((e) => h.log(`(peers) ${e.message}`));
    await s.ch.query('DROP TABLE IF EXISTS kafka_queue').catch((e) => h.log(`(peers) ${e.message}`));
    await k.deleteGroups([group]);
  };
  h.onCleanup(drop);
  return { startedAt: t0, drop, table: 'kafka_user_login', group };
}

async function waitCount(s, table, n, timeoutMs, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = await s.ch.scalar(`SELECT count() FROM ${table}`);
    if (c >= n) return { count: c, at: nowMs() };
    if (Date.now() > deadline) throw new Error(`ClickHouse's ${table} holds ${c} of ${n} rows after ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

/**
 * (c) A topic holding N streamer messages (`streamer producer --sweep` of a filled table) → ClickHouse:
 * the Kafka engine (from the view's creation to count() = N), then `streamer consumer` (its own
 * group; from its spawn to count() = N) on the same topic.
 */
async function backlogToClickhouse(h, k) {
  const n = h.O.rows;
  const s = await h.scratch('peers_ch');
  h.log(`(peers c) filling ${n} rows and publishing them with streamer producer --sweep`);
  await h.fill(s, n);
  const fillSweep = await sweep(h, s);
  h.log(`(peers c) ClickHouse Kafka engine: ${n} messages → kafka_user_login`);
  let engine;
  {
    const meter = h.cpuMeter();
    const ke = await kafkaEngine(h, k, s);
    try {
      const done = await waitCount(s, ke.table, n, Math.max(600_000, n));
      const cpu = meter.read();
      const seconds = (done.at - ke.startedAt) / 1000;
      const [count, distinct] = (await s.ch.query(`SELECT count(), uniqExact(id) FROM ${ke.table}`)).trim().split('\t').map(Number);
      engine = { rows: n, seconds, rowsPerS: n / seconds, count, distinctIds: distinct, cpuSeconds: cpu, cpuUsPerRow: perRowUs(cpu, n) };
      h.log(`(peers c) Kafka engine: ${Math.round(engine.rowsPerS)} rows/s`);
    } finally {
      await ke.drop();
    }
  }
  h.log(`(peers c) streamer consumer: the same ${n} messages → user_login`);
  const group = `${s.topic}-peers-consumer`;
  const spawnedAt = nowMs();
  const st = h.startStreamer(['consumer'], { ...s.env, KAFKA_GROUP_ID: group, HTTP_PORT: '0' });
  h.onCleanup(() => k.deleteGroups([group]));
  let streamer;
  try {
    const meter = h.cpuMeter({ streamer: st.child.pid });
    const joined = await st.waitFor((l) => l.msg === 'joined the consumer group', 120_000, '"joined the consumer group"');
    const done = await waitCount(s, 'user_login', n, Math.max(600_000, n));
    const cpu = meter.read();
    const seconds = (done.at - spawnedAt) / 1000;
    streamer = { rows: n, seconds, rowsPerS: n / seconds, secondsFromJoin: (done.at - joined.at) / 1000, cpuSeconds: cpu, cpuUsPerRow: perRowUs(cpu, n), peakRssMB: st.memory().peakRssMB };
    h.log(`(peers c) streamer consumer: ${Math.round(streamer.rowsPerS)} rows/s`);
  } finally {
    await st.stop();
  }
  return { rows: n, topicFill: fillSweep, kafkaEngine: engine, streamer, ratio: streamer.rowsPerS / engine.rowsPerS };
}

/**
 * (d) `streamer producer` publishes the load's single-row INSERTs (bench/load.mjs) at the rate; the
 * consumer under test writes them to ClickHouse, which the harness polls like part (b) does,
 * stamping each id's first sighting. Latency per row (`latencyMs`): first seen − the broker's append
 * time (the topic's LogAppendTime); and first seen − the commit's acknowledgement. A warm-up load
 * first, as in (b).
 */
async function liveToClickhouse(h, k, variant) {
  const name = variant.streamer ? 'streamer consumer' : `Kafka engine${variant.maxBlockSize ? ` kafka_max_block_size=${variant.maxBlockSize}` : ' (defaults)'}`;
  const s = await h.scratch(variant.streamer ? 'peers_chlive_st' : 'peers_chlive_ke');
  await k.createTopic(s.topic, await k.defaultPartitions());
  const producer = h.startStreamer(['producer'], s.env);
  let consumer = null;
  let engine = null;
  let table = 'user_login';
  const tmp = join(os.tmpdir(), `streamer-bench-peers-${suffix()}.tsv`);
  let polling = false;
  let poller = Promise.resolve();
  try {
    await producer.waitFor((l) => l.msg === 'producer started', 60_000, '"producer started"');
    if (variant.streamer) {
      consumer = h.startStreamer(['consumer'], { ...s.env, HTTP_PORT: '0' });
      await consumer.waitFor((l) => l.msg === 'joined the consumer group', 120_000, '"joined the consumer group"');
    } else {
      engine = await kafkaEngine(h, k, s, { maxBlockSize: variant.maxBlockSize });
      table = engine.table;
    }
    await s.pg((c) => c.query(`INSERT INTO user_login (username, event_type, event_time) VALUES ('warm-up', 'login', now())`));
    await waitCount(s, table, 1, 120_000, 20);
    const total = 1 + Math.round(h.O.rate * (warmSeconds(h) + h.O.seconds)) + 100;
    const seen = new Float64Array(total + 2);
    let low = 2; // id 1 is the first row
    const gaps = [];
    polling = true;
    poller = (async () => {
      let prev = nowMs();
      while (polling) {
        const text = await s.ch.query(`SELECT id FROM ${table} WHERE id >= ${low} FORMAT TabSeparated`).catch(() => '');
        const at = nowMs();
        gaps.push(at - prev);
        prev = at;
        for (const line of text.split('\n')) {
          const id = Number(line);
          if (line && id < seen.length && !seen[id]) seen[id] = at;
        }
        while (low < seen.length && seen[low]) low++;
        await sleep(h.O.pollMs);
      }
    })();
    const allSeen = async (lines, timeoutMs) => {
      const maxId = lines.reduce((m, l) => Math.max(m, Number(l[0])), 0);
      const deadline = Date.now() + timeoutMs;
      while (low <= maxId && Date.now() < deadline) await sleep(20);
    };
    h.log(`(peers d) ${name}: warm-up, ${h.O.rate} rows/s for ${warmSeconds(h)} s`);
    const warm = await h.runLoad(s, ['--rate', String(h.O.rate), '--seconds', String(warmSeconds(h)), '--out', tmp], tmp);
    await allSeen(warm.lines, 60_000);
    h.log(`(peers d) ${name}: ${h.O.rate} rows/s for ${h.O.seconds} s`);
    const meter = h.cpuMeter({ producer: producer.child.pid, ...(consumer ? { consumer: consumer.child.pid } : {}) });
    const { summary, lines } = await h.runLoad(s, ['--rate', String(h.O.rate), '--seconds', String(h.O.seconds), '--out', tmp], tmp);
    const cpu = meter.read();
    await allSeen(lines, 60_000);
    polling = false;
    await poller;
    const appended = await k.timestampsById(s.topic, 1 + warm.lines.length + lines.length);
    const has = (id) => seen[Number(id)] > 0 && appended.has(Number(id));
    const fromKafka = (id) => seen[Number(id)] - appended.get(Number(id));
    const r = {
      tool: name,
      maxBlockSize: variant.maxBlockSize,
      load: summary,
      ...latencyOf(lines, has, fromKafka),
      commitToVisibleMs: latencyOf(lines, has, (id, acked) => seen[Number(id)] - acked).latencyMs,
      poll: summarize(gaps),
      coresBusy: coresBusy(cpu),
      cold: { seconds: warmSeconds(h), ...latencyOf(warm.lines, has, fromKafka) },
    };
    h.log(`(peers d) ${name}: Kafka → visible p50 ${r.latencyMs.p50?.toFixed(1)} p99 ${r.latencyMs.p99?.toFixed(1)} ms; ${r.missing} not seen`);
    return r;
  } finally {
    polling = false;
    await poller;
    await consumer?.stop();
    await engine?.drop();
    await producer.stop();
    rmSync(tmp, { force: true });
  }
}

// ------------------------------------------------------------------ the printed table

const f0 = (x) => (typeof x !== 'number' || Number.isNaN(x) ? '—' : Math.round(x).toLocaleString('en-US'));
const f1 = (x) => (typeof x !== 'number' || Number.isNaN(x) ? '—' : x.toFixed(1));
const f2 = (x) => (typeof x !== 'number' || Number.isNaN(x) ? '—' : x.toFixed(2));

/** [measure, value] rows for run.mjs's table: each figure, the peer's, and the ratio. */
export function peersTableRows(p) {
  const rows = [];
  const add = (measure, value) => rows.push([measure, value]);
  const a = p.backlogToKafka;
  if (a) {
    add(`backlog → Kafka, ${f0(a.rows)} rows: streamer producer --sweep / Debezium snapshot`, `${f0(a.streamer.rowsPerS)} / ${f0(a.debezium.rowsPerS)} rows/s (streamer ÷ Debezium ${f2(a.ratio)}×)`);
    const s = a.streamer.cpuUsPerRow;
    const d = a.debezium.cpuUsPerRow;
    add('  CPU µs per row: streamer + PostgreSQL / JVM + PostgreSQL', `${f1(s.streamer)} + ${f1(s.postgresql)} / ${f1(d.jvm)} + ${f1(d.postgresql)}`);
    add('  Debezium JVM start-up before the snapshot (not counted)', `${f1(a.debezium.startupSeconds)} s`);
  }
  // The live parts: each tool's p50 / p99, and the peer's ÷ streamer's.
  const latencies = (section, what, tools) => {
    if (!section) return;
    const st = section.streamer?.latencyMs;
    for (const [key, label] of tools) {
      const r = section[key];
      if (!r) continue;
      if (r.error) {
        add(`${what}, ${label}`, `failed: ${r.error.slice(0, 80)}`);
        continue;
      }
      const L = r.latencyMs;
      const ratio = key === 'streamer' || !st ? '' : ` (÷ streamer: ${f1(L.p50 / st.p50)}× / ${f1(L.p99 / st.p99)}×)`;
      add(`${what}, ${f0(r.load.rate)} rows/s × ${p.seconds} s, p50 / p99: ${label}`, `${f1(L.p50)} / ${f1(L.p99)} ms${ratio}`);
    }
  };
  latencies(p.liveToKafka, 'commit → Kafka', [
    ['streamer', 'streamer producer'],
    ['debezium', 'Debezium, defaults'],
    ['debeziumPoll10', 'Debezium, poll.interval.ms=10'],
  ]);
  const c = p.topicToClickhouse;
  if (c) {
    add(`topic → ClickHouse, ${f0(c.rows)} messages: streamer consumer / Kafka engine`, `${f0(c.streamer.rowsPerS)} / ${f0(c.kafkaEngine.rowsPerS)} rows/s (streamer ÷ engine ${f2(c.ratio)}×)`);
    add('  CPU µs per row: streamer + ClickHouse / ClickHouse (Kafka broker: streamer / engine)', `${f1(c.streamer.cpuUsPerRow.streamer)} + ${f1(c.streamer.cpuUsPerRow.clickhouse)} / ${f1(c.kafkaEngine.cpuUsPerRow.clickhouse)} (${f1(c.streamer.cpuUsPerRow.kafka)} / ${f1(c.kafkaEngine.cpuUsPerRow.kafka)})`);
  }
  latencies(p.liveToClickhouse, 'Kafka → visible in ClickHouse', [
    ['streamer', 'streamer consumer'],
    ['kafkaEngine', 'Kafka engine, defaults'],
    ['kafkaEngineBlock1000', 'Kafka engine, kafka_max_block_size=1000'],
  ]);
  for (const [k, v] of Object.entries(p.errors ?? {})) add(`FAILED: ${k}`, v.slice(0, 100));
  return rows;
}
