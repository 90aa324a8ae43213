// Imported first by run.mjs. The streamer's kafkajs patches (src/kafka/kafkajs-patch.ts) take only
// if they run before kafkajs is first loaded, and the bench loads kafkajs itself: the `stages`
// part — the library in the bench's own process — then timed kafkajs's own encoder (~33 ms per
// 2,000-message publish instead of ~4 ms, measured 2026-11-26). An import of the patch here would
// not do: ES modules evaluate their imports in order only until one awaits. So the bench runs
// itself again with the build's patch preloaded (`node --import`), once.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = resolve(process.env.STREAMER_DIST || join(root, 'dist'));
const patch = join(dist, 'kafka', 'kafkajs-patch.js');

if (existsSync(patch) && process.env.STREAMER_BENCH_PRELOADED !== patch) {
  const child = spawn(process.execPath, [...process.execArgv, '--import', pathToFileURL(patch).href, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, STREAMER_BENCH_PRELOADED: patch },
  });
  // A signal to this process goes on to the bench that does the work, which cleans up (a `kill` of
  // this one alone left the peers' scratch cluster and Kafka Connect running).
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  const code = await new Promise((done) => child.on('exit', (status, signal) => done(status ?? (signal === 'SIGINT' ? 130 : 1))));
  process.exit(code);
}

/** The build's kafkajs patches as loaded in this process, or null for a build without them. */
export const kafkajsPatch = existsSync(patch) ? (await import(pathToFileURL(patch).href)).kafkajsPatch : null;
