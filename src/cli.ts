/**
 * `streamer <command>`: a thin layer over the library. Strict argument parsing (node:util
 * parseArgs: unknown flags are errors), `--help` everywhere, and one clear line — never a stack
 * trace — for a user's mistake or an unreachable service.
 */
import { parseArgs } from 'node:util';
import { migrateClickHouse } from './clickhouse-migrate.js';
import { configSecrets, loadConfig, type Config } from './config.js';
import { startConsumer } from './consumer.js';
import { StreamerError } from './errors.js';
import { startHttpServer } from './http.js';
import { createLogger, type Logger } from './logger.js';
import { registerGauge } from './metrics.js';
import { migratePostgres } from './pg-migrate.js';
import { startProducer, sweepOnce } from './producer.js';
import { progressReporter } from './progress.js';
import { redactText } from './redact.js';
import { onShutdown } from './signals.js';
import { firstError, formatStatus, kafkaStatus, status } from './status.js';
import { verify } from './verify.js';
import { formatVerify } from './verify-format.js';

const USAGE = `Usage: streamer <command> [options]

Replicates the PostgreSQL table user_login into ClickHouse through Kafka.

Commands:
  migrate             create or update the PostgreSQL and ClickHouse schema (idempotent)
  producer            publish pending rows to Kafka as they are inserted (NOTIFY + sweeps)
  producer --sweep    publish everything pending once, print the count and exit
  consumer            stream the Kafka topic into ClickHouse
  run                 producer and consumer in one process
  status [--json]     pending and failed rows, consumer lag per partition, ClickHouse rows
  verify [--json]     compare the ids of PostgreSQL and ClickHouse; exit 0 only when nothing is
                      missing or duplicated

Every command takes --help. Configuration comes from environment variables (see README.md);
the defaults point at the local stack (npm run stack:up).`;

const HELP: Record<string, string> = {
  migrate: `Usage: streamer migrate

Applies the numbered migrations of sql/postgres/ to DATABASE_URL and of sql/clickhouse/ to
CLICKHOUSE_URL / CLICKHOUSE_DATABASE. Safe to run twice, and from two processes at once.`,
  producer: `Usage: streamer producer [--sweep]

Without --sweep: runs until SIGTERM/SIGINT, publishing rows of user_login whose sent_to_kafka is
not TRUE to KAFKA_TOPIC, woken by the insert trigger's NOTIFY, at start-up, after every listener
reconnect and every SWEEP_INTERVAL_MS.

  --sweep   publish everything pending once, print how many rows and how long, exit 0
            (non-zero with one line when PostgreSQL or Kafka cannot be reached)`,
  consumer: `Usage: streamer consumer

Runs until SIGTERM/SIGINT: consumes KAFKA_TOPIC in group KAFKA_GROUP_ID and inserts the rows into
ClickHouse (CLICKHOUSE_DATABASE.user_login); messages that cannot be stored go to KAFKA_DLQ_TOPIC.`,
  run: `Usage: streamer run

The producer and the consumer in one process (the default deployment). Runs until SIGTERM/SIGINT.`,
  status: `Usage: streamer status [--json]

Pending rows and rows recorded failed in PostgreSQL, the consumer group's lag per partition in
Kafka, and the row count in ClickHouse. A table by default; --json prints one JSON object.`,
  verify: `Usage: streamer verify [--json] [--range-size N]

Compares the ids of user_login in PostgreSQL and in ClickHouse, range by range (aggregates first,
id by id only where a range differs), and reports how many rows PostgreSQL marked sent are missing
from ClickHouse and how many ClickHouse holds more than once, with examples. Exit 0 only when both
are zero; 1 otherwise. Rows not yet sent and rows deleted from PostgreSQL are reported, not failed.
Run it after the streams have drained.

  --json            print the report as one JSON object
  --range-size N    ids per compared range (default 100000)`,
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
        await migrate(config, logger);
        return;
      case 'producer':
        if (values.sweep) await sweep(config, logger);
        else await runServices(config, logger, { producer: true, consumer: false });
        return;
      case 'consumer':
        await runServices(config, logger, { producer: false, consumer: true });
        return;
      case 'run':
        await runServices(config, logger, { producer: true, consumer: true });
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
        const r = await verify(config, logger, rangeSize === undefined ? {} : { rangeSize });
        process.stdout.write(values.json ? `${JSON.stringify(r)}\n` : `${formatVerify(r)}\n`);
        if (!r.ok) process.exitCode = 1;
        return;
      }
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
        ...(command === 'verify' ? { 'range-size': { type: 'string' as const } } : {}),
      },
    }) as { values: { help?: boolean; sweep?: boolean; json?: boolean; 'range-size'?: string } };
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split('\n')[0]} — run "streamer ${command} --help"`);
  }
}

async function migrate(config: Config, logger: Logger): Promise<void> {
  const pgApplied = await migratePostgres(config, logger);
  const chApplied = await migrateClickHouse(config, logger);
  process.stdout.write(
    `PostgreSQL: ${pgApplied.length ? `applied ${pgApplied.join(', ')}` : 'up to date'}\n` +
      `ClickHouse: ${chApplied.length ? `applied ${chApplied.join(', ')}` : 'up to date'}\n`,
  );
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

async function runServices(config: Config, logger: Logger, which: { producer: boolean; consumer: boolean }): Promise<void> {
  const stops: Array<() => Promise<void>> = [];
  const dones: Promise<void>[] = [];
  const readiness: Array<() => string | null> = [];
  try {
    if (which.consumer) {
      const c = await startConsumer(config, logger);
      stops.push(() => c.stop());
      dones.push(c.done);
      readiness.push(() => (c.ready ? null : 'consumer: cannot store batches in ClickHouse or commit to Kafka'));
      registerGauge(
        'streamer_consumer_lag',
        'Messages of KAFKA_TOPIC not yet committed by KAFKA_GROUP_ID, per partition (read at scrape time)',
        async () => (await kafkaStatus(config, logger)).partitions.map((p) => ({ labels: { partition: String(p.partition) }, value: p.lag })),
        ['partition'],
      );
    }
    if (which.producer) {
      const p = await startProducer(config, logger);
      stops.push(() => p.stop());
      dones.push(p.done);
      readiness.push(() => (p.ready ? null : 'producer: PostgreSQL LISTEN connection is down'));
    }
    if (config.httpPort > 0) {
      const server = await startHttpServer(config.httpPort, logger, () => readiness.map((r) => r()).filter((r): r is string => r !== null));
      stops.push(() => server.close());
    }
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
