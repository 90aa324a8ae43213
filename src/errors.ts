/**
 * A small error hierarchy. The retry loops read `retriable`; the CLI prints `message` as one line
 * (never a stack trace) for errors a user can fix.
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

/** The error's message plus its code, if it has one (ECONNREFUSED, 57P01, …). */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const msg = err.message || err.name;
    return typeof code === 'string' && !msg.includes(code) ? `${msg} (${code})` : msg;
  }
  return String(err);
}
