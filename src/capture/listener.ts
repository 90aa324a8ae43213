/**
 * LISTEN on its own connection (pg-listen), as a wake-up hint for the producer. Every (re)connect
 * also wakes it, because notifications sent while the connection was down are gone.
 */
import type pg from 'pg';
import pgListen, { type Options, type Subscriber } from 'pg-listen';
import type { Config } from '../config/config.js';
import { isPgConnectionError, pgConnectionConfig, pgUnreachableMessage } from './db.js';
import { UnreachableError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { backoffDelay } from '../common/retry.js';
import { NOTIFY_CHANNEL } from './plans.js';

// pg-listen is CommonJS with `exports.default`; under NodeNext module resolution TypeScript types
// the default import as the module object, while Node hands over the function either way.
const createSubscriber = ((pgListen as unknown as { default?: unknown }).default ?? pgListen) as (
  config: pg.ClientConfig,
  options: Options,
) => Subscriber;

export type WakeReason = 'notify' | 'connected';

export interface Listener {
  close(): Promise<void>;
  /** True while the LISTEN connection is up (for readiness). */
  readonly connected: boolean;
}

/** `wake` gets the reason, and for a notification the id of the table it is about (its payload). */
export async function startListener(config: Config, logger: Logger, wake: (reason: WakeReason, table?: string) => void): Promise<Listener> {
  const log = logger.child({ component: 'listener', channel: NOTIFY_CHANNEL });
  let connected = false;
  let everConnected = false;
  const subscriber: Subscriber = createSubscriber(pgConnectionConfig(config, 'streamer-listener', { queryTimeoutMs: config.databaseQueryTimeoutMs }), {
    // pg-listen gives up after 3 s by default, which turns a PostgreSQL restart into a fatal
    // error. We retry forever with capped, jittered backoff and log every attempt.
    retryLimit: Infinity,
    retryTimeout: 0,
    retryInterval: (failedAttempts: number) => {
      const delayMs = backoffDelay(failedAttempts + 1, config.retryMaxDelayMs);
      log.warn({ attempt: failedAttempts + 1, nextRetryMs: delayMs }, `PostgreSQL LISTEN connection: attempt ${failedAttempts + 1} failed, next in ${delayMs} ms`);
      return delayMs;
    },
    // A cheap query every 10 s notices a half-open connection (no TCP reset after a network cut):
    // it fails at DATABASE_QUERY_TIMEOUT_MS, and pg-listen reconnects.
    paranoidChecking: 10_000,
    // The payload is the table's id (streamer_notify), not JSON.
    parse: (payload: string) => payload,
  });
  subscriber.events.on('notification', (n: { payload?: unknown }) => wake('notify', typeof n.payload === 'string' ? n.payload : undefined));
  subscriber.events.on('reconnect', (attempt: number) => {
    connected = false;
    if (attempt === 1) log.warn('PostgreSQL LISTEN connection lost: reconnecting');
  });
  subscriber.events.on('connected', () => {
    connected = true;
    if (everConnected) log.info('PostgreSQL LISTEN connection re-established: sweeping for what arrived meanwhile');
    everConnected = true;
    wake('connected');
  });
  subscriber.events.on('error', (err: Error) => {
    log.error({ err }, 'PostgreSQL LISTEN connection error');
  });
  try {
    await subscriber.connect();
    await subscriber.listenTo(NOTIFY_CHANNEL);
  } catch (err) {
    await subscriber.close().catch(() => {});
    if (isPgConnectionError(err)) throw new UnreachableError(pgUnreachableMessage(config, err), err);
    throw err;
  }
  log.debug('listening');
  return {
    get connected() {
      return connected;
    },
    async close() {
      await subscriber.close().catch(() => {});
    },
  };
}
