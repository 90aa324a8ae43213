/**
 * A small error hierarchy. The retry loops (producer.ts, runner.ts) read `retriable`, as kafkajs's
 * retrier does: a retriable error (a service down, restarting, timing out) is retried with capped
 * backoff for as long as it takes; anything else (a table dropped, a privilege revoked) stops the
 * process with its message, since retrying cannot cure it. Each service's module decides which of
 * its errors are which (db.ts, kafka.ts, clickhouse.ts) and wraps them with `classified`. The CLI
 * prints `message` as one line (never a stack trace) for errors a user can fix.
 */
export class StreamerError extends Error {
  readonly retriable: boolean;
  constructor(message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.retriable = options.retriable ?? false;
  }
}

/** A bad configuration value: the message names the variable, the value and what is allowed. */
export class ConfigError extends StreamerError {}

/** A service (PostgreSQL, Kafka, ClickHouse) that does not answer at its address. */
export class UnreachableError extends StreamerError {
  constructor(message: string, cause?: unknown) {
    super(message, { retriable: true, cause });
  }
}

/** Whether a loop should retry `err`: only a StreamerError that says so. */
export function isRetriable(err: unknown): boolean {
  return err instanceof StreamerError && err.retriable;
}

/** `err` as a StreamerError with `message`, retriable or not as its service's module decided. */
export function classified(message: string, retriable: boolean, cause: unknown): StreamerError {
  return new StreamerError(message, { retriable, cause });
}

/** The error's message plus its code, if it has one (ECONNREFUSED, 57P01, …). */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const msg = err.message || err.name;
    return typeof code === 'string' && !msg.includes(code) ? `${msg} (${code})` : msg;
  }
  return String(err);
}
