import pino, { type Logger } from 'pino';
import { redactText } from './redact.js';

export type { Logger };

/**
 * Structured logs: JSON off a terminal, pino-pretty on one. Passwords are redacted by key and,
 * inside strings (connection URLs, error messages), by `redactText`, with the configured secrets.
 */
export function createLogger(
  options: { level?: string; secrets?: readonly string[]; pretty?: boolean; destination?: pino.DestinationStream } = {},
): Logger {
  const secrets = options.secrets ?? [];
  const pretty = options.pretty ?? (process.stderr.isTTY === true && !process.env.CI);
  const base: pino.LoggerOptions = {
    level: options.level ?? 'info',
    base: { pid: process.pid },
    redact: {
      paths: ['password', '*.password', '*.*.password', 'sasl.password', 'config.clickhousePassword'],
      censor: '***',
    },
    formatters: {
      log(object) {
        return scrub(object, secrets) as Record<string, unknown>;
      },
    },
    hooks: {
      logMethod(args, method) {
        const scrubbed = args.map((a) => (typeof a === 'string' ? redactText(a, secrets) : a));
        method.apply(this, scrubbed as Parameters<typeof method>);
      },
    },
  };
  if (options.destination) return pino(base, options.destination);
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { destination: 2, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
  }
  return pino(base, pino.destination(2));
}

function scrub(value: unknown, secrets: readonly string[], depth = 0): unknown {
  if (depth > 6) return value;
  if (typeof value === 'string') return redactText(value, secrets);
  // formatters.log runs before pino's serializers, so errors are shaped here.
  if (value instanceof Error) return scrub(serializeError(value), secrets, depth + 1);
  if (Array.isArray(value)) return value.map((v) => scrub(v, secrets, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = scrub(v, secrets, depth + 1);
    return out;
  }
  return value;
}

/**
 * Errors as a few useful fields. pino's default serializer copies every enumerable property, and
 * node-postgres errors carry the whole client object (connection parameters included).
 */
function serializeError(err: unknown): Record<string, unknown> | unknown {
  if (!(err instanceof Error)) return err;
  const e = err as Error & { code?: unknown; type?: unknown; retriable?: unknown; cause?: unknown };
  const out: Record<string, unknown> = { type: e.name, message: e.message };
  if (e.code !== undefined) out.code = e.code;
  if (typeof e.type === 'string') out.kafkaType = e.type;
  if (typeof e.retriable === 'boolean') out.retriable = e.retriable;
  if (e.cause instanceof Error) out.cause = e.cause.message;
  if (e.stack) out.stack = e.stack;
  return out;
}
