// The consumer's sink alone, no server: TableSink.write over batches of user_login messages as the
// producer writes them, against a ClickHouse client that only counts the insert's bytes. Prints the
// CPU and wall time per row (garbage collection included) and the insert body's bytes per row, per
// round, then the best round's (the least disturbed by a noisy machine).
//
//   node bench/sink.mjs [build folder, default dist] [rounds, default 6]
//
// Two builds alternated on one machine compare their row building (e.g. STREAMER_DIST folders):
//   for d in .bench-a .bench-b .bench-a .bench-b; do node --expose-gc bench/sink.mjs $d; done
// It asserts nothing and writes no JSON: a quick check while working on the sink; the claims in
// README.md come from `bench/run.mjs` parts, whose JSON is kept.
import { batch, openSink, ROWS } from './sink-fixture.mjs';

const rounds = Number(process.argv[3] ?? 6);
let bodyBytes = 0;
let rowsInserted = 0;
const sink = await openSink(process.argv[2], (body) => {
  bodyBytes += Buffer.byteLength(body);
});

const best = { cpu: Infinity, wall: Infinity };
for (let r = 0; r <= rounds; r++) {
  const batches = Array.from({ length: 10 }, batch);
  globalThis.gc?.();
  bodyBytes = 0;
  rowsInserted = 0;
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  for (const b of batches) rowsInserted += (await sink.write(b)).inserted;
  const wall = ((performance.now() - wall0) * 1e6) / (batches.length * ROWS);
  const cpu = process.cpuUsage(cpu0);
  const rows = batches.length * ROWS;
  if (rowsInserted !== rows) throw new Error(`${rowsInserted} of ${rows} rows inserted`);
  const cpuNs = ((cpu.user + cpu.system) * 1000) / rows;
  // Round 0 warms the JIT up and learns the message shape: not printed.
  if (r === 0) continue;
  // CPU counts every thread of the process (V8 compiles and collects garbage on others too); wall
  // time is the main thread's.
  console.log(`round ${r}: ${cpuNs.toFixed(0)} ns CPU, ${wall.toFixed(0)} ns wall per row, ${(bodyBytes / rows).toFixed(1)} bytes of insert per row`);
  best.cpu = Math.min(best.cpu, cpuNs);
  best.wall = Math.min(best.wall, wall);
}
console.log(`best of ${rounds} rounds: ${best.cpu.toFixed(0)} ns CPU, ${best.wall.toFixed(0)} ns wall per row`);
