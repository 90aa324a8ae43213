import { readFileSync } from 'node:fs';

/** package.json's version (beside sql/, like SQL_DIR); "unknown" if it cannot be read. */
export const VERSION: string = (() => {
  try {
    return String((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
})();
