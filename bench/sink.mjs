// The consumer's sink alone, no server: TableSink.write over batches of user_login messages as the
// producer writes them, against a ClickHouse client that only counts the insert's bytes. Prints the
// CPU time per row (garbage collection included) and the insert body's bytes per row, per round.
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

for (let r = 0; r <= rounds; r++) {
  const batches = Array.from({ length: 10 }, batch);
  globalThis.gc?.();
  bodyBytes = 0;
  rowsInserted = 0;
  const cpu0 = process.cpuUsage();
  for (const b of batches) rowsInserted += (await sink.write(b)).inserted;
  const cpu = process.cpuUsage(cpu0);
  const rows = batches.length * ROWS;
  if (rowsInserted !== rows) throw new Error(`${rowsInserted} of ${rows} rows inserted`);
  // Round 0 warms the JIT up and learns the message shape: not printed.
  if (r > 0) console.log(`round ${r}: ${(((cpu.user + cpu.system) * 1000) / rows).toFixed(0)} ns CPU per row, ${(bodyBytes / rows).toFixed(1)} bytes of insert per row`);
}
