/** The whole pipeline in-process (producer + consumer, as `streamer run`), and the checks a user makes. */
import type { Config } from '../../src/config/config.js';
import { startConsumer } from '../../src/sink/consumer.js';
import { startProducer } from '../../src/capture/producer.js';
import { verify, type VerifyReport } from '../../src/ops/verify.js';
import { formatVerify } from '../../src/ops/verify-format.js';
import { testLogger } from './clickhouse.js';
import { waitFor } from './wait.js';

export interface Pipeline {
  stop(): Promise<void>;
}

export async function startPipeline(config: Config): Promise<Pipeline> {
  const logger = testLogger(config);
  const consumer = await startConsumer(config, logger);
  const producer = await startProducer(config, logger).catch(async (err: unknown) => {
    await consumer.stop();
    throw err;
  });
  return {
    stop: async () => {
      await producer.stop();
      await consumer.stop();
    },
  };
}

/**
 * Waits until `streamer verify` finds ClickHouse equal to PostgreSQL with nothing left to send —
 * the state a user waits for — and returns that report.
 */
export async function converged(config: Config, timeoutMs = 60_000): Promise<VerifyReport> {
  const logger = testLogger(config);
  let last: VerifyReport | null = null;
  try {
    return await waitFor(
      'verify OK with nothing pending',
      async () => {
        last = await verify(config, logger);
        return last.ok && last.notYetSent === 0 ? last : undefined;
      },
      timeoutMs,
      250,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; the last report: ${last ? formatVerify(last) : 'none'}`);
  }
}
