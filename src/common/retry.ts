/**
 * Capped, jittered exponential backoff: 250 ms, 500 ms, 1 s, 2 s, 4 s … up to `maxMs`
 * (RETRY_MAX_DELAY_MS, default 30 s), each delay randomised by ±20 % so that several processes
 * retrying against the same server do not stampede it in step.
 */
export function backoffDelay(attempt: number, maxMs: number, baseMs = 250): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 20)));
  const jitter = exp * 0.2 * (Math.random() * 2 - 1);
  return Math.max(0, Math.round(Math.min(maxMs, exp + jitter)));
}

/** Resolves after `ms`, or at once when `signal` aborts. Never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * `work`, or the error `onTimeout` makes once `ms` have passed without it settling (its result is then
 * ignored); `onTimeout` runs first.
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  work.catch(() => {}); // settles after the deadline: already reported
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}
