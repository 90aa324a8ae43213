// Imported first by run.mjs. The streamer's kafkajs patches (src/kafka/kafkajs-patch.ts) take only
// if they run before kafkajs is first loaded, and the bench loads kafkajs itself: the `stages`
// part — the library in the bench's own process — then timed kafkajs's own encoder (~33 ms per
// 2,000-message publish instead of ~4 ms, measured 2026-11-26). An import of the patch here would
// not do: ES modules evaluate their imports in order only until one awaits. So the bench runs
// itself again with the build's patch preloaded (`node --import`), once.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = resolve(process.env.STREAMER_DIST || join(root, 'dist'));
const patch = join(dist, 'kafka', 'kafkajs-patch.js');

if (existsSync(patch) && process.env.STREAMER_BENCH_PRELOADED !== patch) {
  const r = spawnSync(process.execPath, [...process.execArgv, '--import', pathToFileURL(patch).href, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, STREAMER_BENCH_PRELOADED: patch },
  });
  process.exit(r.status ?? 1);
}

/** The build's kafkajs patches as loaded in this process, or null for a build without them. */
export const kafkajsPatch = existsSync(patch) ? (await import(pathToFileURL(patch).href)).kafkajsPatch : null;
