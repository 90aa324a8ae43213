import type { Logger } from '../common/logger.js';

/**
 * Progress of `producer --sweep`: a bar redrawn in place on a terminal, a log line every 2 s
 * otherwise (CI, files, pipes).
 */
export function progressReporter(logger: Logger, stream: NodeJS.WriteStream = process.stderr) {
  const tty = stream.isTTY === true;
  const started = Date.now();
  let lastLog = 0;
  let drawn = false;
  let last = { done: 0, total: 0 };
  const rate = (done: number) => Math.round(done / Math.max(0.001, (Date.now() - started) / 1000));
  return {
    update: (done: number, total: number) => {
      last = { done, total };
      if (tty) {
        const width = 30;
        const frac = total > 0 ? Math.min(1, done / total) : 1;
        const filled = Math.round(frac * width);
        stream.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${done}/${total} rows ${rate(done)} rows/s`);
        drawn = true;
      } else if (Date.now() - lastLog >= 2000 || (done === total && done > 0)) {
        lastLog = Date.now();
        logger.info({ done, total, rowsPerSecond: rate(done) }, `sweep: ${done}/${total} rows`);
      }
    },
    finish: () => {
      if (tty && drawn) stream.write('\n');
      else if (!tty && last.total > 0 && last.done !== last.total) logger.info({ done: last.done, total: last.total }, 'sweep finished');
    },
  };
}
