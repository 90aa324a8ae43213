import type { Logger } from './logger.js';

/**
 * Graceful shutdown on the first SIGTERM/SIGINT, forced exit on the second. The graceful path
 * gets `forceAfterMs` (default 15 s) before an unref'd timer exits with code 1 anyway.
 */
export function onShutdown(logger: Logger, shutdown: (signal: string) => Promise<void>, forceAfterMs = 15_000): () => void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down (send the signal again to force)');
    setTimeout(() => {
      logger.error({ forceAfterMs }, 'shutdown took too long: exiting');
      process.exit(1);
    }, forceAfterMs).unref();
    shutdown(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return () => {
    process.off('SIGTERM', handler);
    process.off('SIGINT', handler);
  };
}
