import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

/** sql/ of the package, from src/ (tests) and from dist/ (the built CLI) alike. */
export const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));

/** The numbered `NNNN_name.sql` files of a folder, in order; numbering must be 1, 2, 3 … */
export function readMigrations(dir: string): Migration[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.sql')).sort();
  return files.map((file, i) => {
    const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!m || Number(m[1]) !== i + 1) {
      throw new Error(`migration file ${file} in ${dir} is misnamed or out of sequence (expected ${String(i + 1).padStart(4, '0')}_name.sql)`);
    }
    return { id: i + 1, name: m[2] as string, sql: readFileSync(`${dir}/${file}`, 'utf8') };
  });
}
