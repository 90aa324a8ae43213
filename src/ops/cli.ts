/**
 * `streamer <command>`: a thin layer over the library. Strict argument parsing (node:util
 * parseArgs: unknown flags are errors), `--help` everywhere, and one clear line — never a stack
 * trace — for a user's mistake or an unreachable service.
 */
import { parseArgs } from 'node:util';
import { configSecrets, DEFAULT_HTTP_PORTS, loadConfig, type Config, type ServiceRole } from '../config/config.js';
import { startConsumer } from '../sink/consumer.js';
import { StreamerError } from '../common/errors.js';
import { startHttpServer, type Listen } from './http.js';
import { createLogger, type Logger } from '../common/logger.js';
import { registerGauge, registerInfo } from './metrics.js';
import { migrate } from './migrate.js';
import { startProducer, sweepOnce } from '../capture/producer.js';
import { progressReporter } from './progress.js';
import { redactText } from '../common/redact.js';
import { onShutdown } from '../common/signals.js';
import { firstError, formatStatus, LagMonitor, status } from './status.js';
import { clickhouseGrants, formatGrants, postgresGrants } from './grants.js';
import { createPool, assertPgReachable } from '../capture/db.js';
import { buildSpec, readCatalog } from '../tables/introspect.js';
import { verify } from './verify.js';
import { VERSION } from '../common/version.js';
import { formatVerify } from './verify-format.js';

const USAGE = `Usage: streamer <command> [options]

Replicates PostgreSQL tables (STREAMER_TABLES, default public.user_login) into ClickHouse through
Kafka: inserts, updates and deletes, without a replication slot.

Commands:
  migrate             install the capture of each table and create its ClickHouse table (idempotent)
  producer            publish changes to Kafka as they happen (NOTIFY + sweeps)
  producer --sweep    publish everything pending once, print the count and exit
  consumer            stream the topics into ClickHouse
  run                 producer and consumer in one process
  status [--json]     per table: pending changes, consumer lag per partition, ClickHouse rows
  verify [--json]     compare each table's rows and values in PostgreSQL and ClickHouse; exit 0 only
                      when nothing is missing, stale, deleted-but-present or duplicated
  grants              print the SQL that gives the producer and the consumer their least privileges

Every command takes --help. Configuration comes from environment variables and the optional
STREAMER_CONFIG file (see README.md); the defaults point at the local stack (npm run stack:up).`;

const HELP: Record<string, string> = {
  migrate: `Usage: streamer migrate

Applies the numbered migrations of sql/postgres/ to DATABASE_URL and of sql/clickhouse/ to
CLICKHOUSE_URL / CLICKHOUSE_DATABASE; then, per table of STREAMER_TABLES: reads its columns and key
from the catalog, installs its capture (triggers, change log), creates or updates its ClickHouse
table and view, and queues its existing rows to be sent where needed (backfill, with progress).
Safe to run twice, and from two processes at once.`,
  producer: `Usage: streamer producer [--sweep]

Without --sweep: runs until SIGTERM/SIGINT, publishing every table's changes (inserts, updates,
deletes) to its topic, woken by the triggers' NOTIFY, at start-up, after every listener reconnect
and every SWEEP_INTERVAL_MS. Health and metrics on HTTP_HOST:HTTP_PORT (default 127.0.0.1:9465).

  --sweep   publish everything pending once, print how many changes and how long, exit 0
            (non-zero with one line when PostgreSQL or Kafka cannot be reached)`,
  consumer: `Usage: streamer consumer

Runs until SIGTERM/SIGINT: consumes every table's topic in its consumer group and writes the
changes into its ClickHouse table (in CLICKHOUSE_DATABASE); messages that cannot be stored go to
the table's dead-letter topic. The group is KAFKA_GROUP_ID, by default derived from the ClickHouse
server, database and topics (streamer-clickhouse.<host:port>.<database>.<topics>); a new default
group starts where an earlier default group of the same tables left off (README "Consumer group").
Health and metrics on HTTP_HOST:HTTP_PORT (default 127.0.0.1:9466).`,
  run: `Usage: streamer run

The producer and the consumer in one process (the default deployment). Runs until SIGTERM/SIGINT.
Health and metrics on HTTP_HOST:HTTP_PORT (default 127.0.0.1:9464).`,
  status: `Usage: streamer status [--json]

Per table: changes pending and rows recorded failed in PostgreSQL, the consumer group's lag per
partition in Kafka, and the rows in ClickHouse. A table by default; --json prints one JSON object
(always, even when a service cannot be read: then with "ok":false and exit 1).`,
  verify: `Usage: streamer verify [--json] [--table T] [--range-size N]

Compares each table's rows in PostgreSQL with the newest, not deleted version of each key in
ClickHouse, by a hash of every row's values — bucket by bucket (sums first, key by key only where a
bucket differs) — and counts duplicated versions. Reports missing, stale (other values),
deleted-but-present and duplicated keys with examples; exit 0 only when all four are zero, 1
otherwise. Keys with changes not yet sent, and rows the consumer dead-lettered, are reported, not
failed. Run it after the streams have drained.

  --json            print the report as one JSON object
  --table T         only this table ([schema.]table, as in STREAMER_TABLES)
  --range-size N    key values per compared range, for one-column integer keys (default 100000)`,
  grants: `Usage: streamer grants [--postgres | --clickhouse] [--role NAME] [--user NAME]

Prints the SQL that gives the producer (PostgreSQL role) and the consumer (ClickHouse user, 20.5
and later) the least privileges they need for the configured tables: run it once after "streamer
migrate", as the tables' owner / a ClickHouse admin, e.g.
  streamer grants --postgres | psql "$ADMIN_DATABASE_URL"
It reads the tables' columns from DATABASE_URL; it changes nothing itself.

  --postgres      only the PostgreSQL part
  --clickhouse    only the ClickHouse part
  --role NAME     the producer's PostgreSQL role (default streamer_producer)
  --user NAME     the consumer's ClickHouse user (default streamer_consumer)`,
};

export async function main(argv: string[]): Promise<void> {
  let secrets: string[] = [];
  let jsonStatus = false; // `status --json`: even a failure is one JSON object on stdout
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      process.stdout.write(`${USAGE}\n`);
      if (command === undefined) process.exitCode = 2;
      return;
    }
    const help = HELP[command];
    if (!help) throw new UsageError(`unknown command "${command}" — run "streamer --help" for the list`);
    const { values } = parseCommandArgs(command, rest);
    jsonStatus = command === 'status' && values.json === true;
    if (values.help) {
      process.stdout.write(`${help}\n`);
      return;
    }
    const config = loadConfig();
    secrets = configSecrets(config);
    const logger = createLogger({ level: config.logLevel, secrets });
    switch (command) {
      case 'migrate':
        await runMigrate(config, logger);
        return;
      case 'producer':
        if (values.sweep) await sweep(config, logger);
        else await runServices(config, logger, 'producer');
        return;
      case 'consumer':
        await runServices(config, logger, 'consumer');
        return;
      case 'run':
        await runServices(config, logger, 'run');
        return;
      case 'status': {
        const r = await status(config, logger);
        if (values.json) {
          // Always one JSON object on stdout, whatever failed (scripts parse it): the problem is
          // in the failing section's `error`, and the exit code says so.
          process.stdout.write(`${JSON.stringify(r)}\n`);
          if (!r.ok) process.exitCode = 1;
          return;
        }
        const err = firstError(r);
        if (err !== null) throw new StreamerError(err);
        process.stdout.write(`${formatStatus(r)}\n`);
        return;
      }
      case 'verify': {
        const rangeSize = values['range-size'] === undefined ? undefined : Number(values['range-size']);
        if (rangeSize !== undefined && (!Number.isSafeInteger(rangeSize) || rangeSize < 1)) {
          throw new UsageError(`--range-size=${JSON.stringify(values['range-size'])} is not valid: expected a whole number of at least 1`);
        }
        const r = await verify(config, logger, { ...(rangeSize === undefined ? {} : { rangeSize }), ...(values.table ? { table: values.table } : {}) });
        process.stdout.write(values.json ? `${JSON.stringify(r)}\n` : `${formatVerify(r)}\n`);
        if (!r.ok) process.exitCode = 1;
        return;
      }
      case 'grants':
        process.stdout.write(await grants(config, logger, values));
        return;
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`streamer: ${redactText(message, secrets)}\n`);
    if (jsonStatus) process.stdout.write(`${JSON.stringify({ ok: false, error: redactText(message, secrets) })}\n`);
    if (!(err instanceof StreamerError) && !(err instanceof UsageError) && process.env.LOG_LEVEL === 'debug' && err instanceof Error) {
      process.stderr.write(`${redactText(err.stack ?? '', secrets)}\n`);
    }
    process.exitCode = err instanceof UsageError ? 2 : 1;
  }
}

class UsageError extends Error {}

interface CommandValues {
  help?: boolean;
  sweep?: boolean;
  json?: boolean;
  'range-size'?: string;
  table?: string;
  postgres?: boolean;
  clickhouse?: boolean;
  role?: string;
  user?: string;
}

async function grants(config: Config, logger: Logger, values: CommandValues): Promise<string> {
  if (values.postgres && values.clickhouse) throw new UsageError('--postgres and --clickhouse together: give one, or neither for both');
  const pool = createPool(config, logger, 'streamer-grants', {});
  try {
    await assertPgReachable(pool, config);
    const schema = (await pool.query<{ s: string }>('SELECT current_schema() AS s')).rows[0]?.s ?? 'public';
    const specs = [];
    for (const t of config.tables) specs.push(buildSpec(t, await readCatalog(pool, t.schema, t.table)));
    return formatGrants(
      values.clickhouse ? null : postgresGrants(specs, values.role ?? 'streamer_producer', schema),
      values.postgres ? null : clickhouseGrants(specs, values.user ?? 'streamer_consumer', config.clickhouseDatabase),
    );
  } finally {
    await pool.end();
  }
}

function parseCommandArgs(command: string, args: string[]) {
  try {
    return parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: 'boolean', short: 'h' },
        ...(command === 'producer' ? { sweep: { type: 'boolean' as const } } : {}),
        ...(command === 'status' || command === 'verify' ? { json: { type: 'boolean' as const } } : {}),
        ...(command === 'verify' ? { 'range-size': { type: 'string' as const }, table: { type: 'string' as const } } : {}),
        ...(command === 'grants'
          ? { postgres: { type: 'boolean' as const }, clickhouse: { type: 'boolean' as const }, role: { type: 'string' as const }, user: { type: 'string' as const } }
          : {}),
      },
    }) as { values: CommandValues };
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split('\n')[0]} — run "streamer ${command} --help"`);
  }
}

async function runMigrate(config: Config, logger: Logger): Promise<void> {
  const { postgres: pg, clickhouse: ch } = await migrate(config, logger, {
    onProgress: (table, queued) => process.stderr.isTTY && process.stderr.write(`\rbackfill of ${table}: ${queued} rows queued`),
  });
  const lines = [`PostgreSQL: ${pg.applied.length ? `applied ${pg.applied.join(', ')}` : 'up to date'}`, `ClickHouse: ${ch.applied.length ? `applied ${ch.applied.join(', ')}` : 'up to date'}`];
  for (const [i, t] of pg.tables.entries()) {
    const c = ch.tables[i];
    const parts = [`capture ${t.capture}`];
    if (t.addedColumns.length > 0) parts.push(`columns added: ${t.addedColumns.join(', ')}`);
    if (t.backfilled > 0) parts.push(`${t.backfilled} rows queued to be sent (backfill)`);
    if (c) parts.push(`ClickHouse ${c.table} ${c.action}${c.detail ? ` (${c.detail})` : ''}`);
    lines.push(`${t.table}: ${parts.join('; ')}`);
  }
  if (process.stderr.isTTY && pg.tables.some((t) => t.backfilled > 0)) process.stderr.write('\n');
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function sweep(config: Config, logger: Logger): Promise<void> {
  const progress = progressReporter(logger);
  const r = await sweepOnce(config, logger, progress.update).finally(progress.finish);
  const seconds = r.ms / 1000;
  const rate = seconds > 0 ? Math.round(r.published / seconds) : r.published;
  process.stdout.write(
    `published ${r.published} rows in ${seconds.toFixed(2)} s (${rate} rows/s)` +
      (r.failed ? `; ${r.failed} rows recorded as failed (see streamer_failed_rows)` : '') +
      '\n',
  );
}

/** The health/metrics address of a command: HTTP_PORT, or the command's own default port; null when turned off. */
export function httpListen(config: Pick<Config, 'httpHost' | 'httpPort'>, role: ServiceRole): Listen | null {
  if (config.httpPort === 0) return null;
  if (config.httpPort !== null) return { host: config.httpHost, port: config.httpPort };
  return { host: config.httpHost, port: DEFAULT_HTTP_PORTS[role], defaultOf: role };
}

async function runServices(config: Config, logger: Logger, role: ServiceRole): Promise<void> {
  const stops: Array<() => Promise<void>> = [];
  const dones: Promise<void>[] = [];
  const readiness: Array<{ component: string; notReady: () => string | null }> = [];
  let starting = true;
  const notReady = () => (starting ? [`${role}: starting`] : readiness.map((r) => r.notReady()).filter((r): r is string => r !== null));
  try {
    // The port first: a busy one fails before any connection is made (before the consumer joins
    // its group and makes the other members rebalance, say). /readyz says "starting" till then.
    const listen = httpListen(config, role);
    if (listen) {
      const server = await startHttpServer(listen, logger, notReady);
      stops.push(() => server.close());
    }
    registerInfo(role, VERSION);
    if (role !== 'producer') {
      const c = await startConsumer(config, logger);
      stops.push(() => c.stop());
      dones.push(c.done);
      readiness.push({ component: 'consumer', notReady: () => (c.ready ? null : 'consumer: cannot store batches in ClickHouse or commit to Kafka') });
      const lag = LagMonitor.forConfig(config, logger);
      stops.push(() => lag.close());
      registerGauge(
        'streamer_consumer_lag',
        'Messages of each table\'s topic not yet committed by the consumer group, per partition (read at scrape time, over one kept Kafka connection)',
        async () => (await lag.read()).flatMap((t) => t.partitions.map((p) => ({ labels: { topic: t.topic, partition: String(p.partition) }, value: p.lag }))),
        ['topic', 'partition'],
      );
    }
    if (role !== 'consumer') {
      const p = await startProducer(config, logger);
      stops.push(() => p.stop());
      dones.push(p.done);
      readiness.push({ component: 'producer', notReady: () => (p.ready ? null : 'producer: PostgreSQL LISTEN connection is down') });
    }
    registerGauge(
      'streamer_ready',
      'Per component of this process: 1 when ready (what /readyz answers 200 for), 0 when not',
      async () => readiness.map((r) => ({ labels: { component: r.component }, value: r.notReady() === null ? 1 : 0 })),
      ['component'],
    );
    starting = false;
  } catch (err) {
    await Promise.all(stops.map((s) => s()));
    throw err;
  }
  const stopAll = async () => {
    await Promise.all(stops.map((s) => s()));
  };
  onShutdown(logger, stopAll);
  try {
    await Promise.all(dones);
  } catch (err) {
    await stopAll().catch(() => {});
    throw err;
  }
}
