// A prototype, not product code: what the consumer's row building would cost if it wrote the
// TabSeparated insert body straight from the message bytes instead of making strings (the
// message's text, the shape's captures, each row's line). For user_login's one upsert shape only;
// anything else (an escape in a string, another shape) would go the existing way. It times
// TableSink.write of a build against the byte path over the same batches (20,000 messages, views
// into one fetch buffer, as kafkajs hands them over), and checks that both bodies are the same
// bytes apart from _ingested_at, the last field of each line. Prints; writes no JSON.
//
//   node --expose-gc bench/byte-path-prototype.mjs [build folder, default dist] [rounds, default 4]
import { batch, openSink, ROWS } from './sink-fixture.mjs';

const rounds = Number(process.argv[3] ?? 4);
let bodyA = '';
const sink = await openSink(process.argv[2], (body) => {
  bodyA = body;
});
// ---- the byte path for this one shape
const enc = (s) => Uint8Array.from(Buffer.from(s));
const P = [enc('{"id":'), enc(',"username":'), enc(',"event_type":'), enc(',"event_time":'), enc(',"_op":"upsert","_version":')];
const TAB = 9, NL = 10, Q = 34, BS = 92;
function expect(v, at, lit) { for (let k = 0; k < lit.length; k++) if (v[at + k] !== lit[k]) return -1; return at + lit.length; }
function ascii(body, at, s) { for (let k = 0; k < s.length; k++) body[at + k] = s.charCodeAt(k); return at + s.length; }
function writeBytes(inputs, ingestedAt) {
  let body = new Uint8Array(inputs.length * 120);
  let w = 0;
  const newest = new Map(); // id → row index (the highest version)
  const starts = new Int32Array(inputs.length + 1), versions = new Float64Array(inputs.length);
  let rows = 0, slow = 0;
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i];
    const v = input.value;
    if (w + v.length + 64 > body.length) { const b = new Uint8Array(body.length * 2); b.set(body); body = b; }
    const start = w;
    let at = expect(v, 0, P[0]);
    // id: an integer
    let id = 0, neg = false, c = v[at];
    if (c === 45) { neg = true; body[w++] = 45; at++; }
    const d0 = at;
    while ((c = v[at]) >= 48 && c <= 57) { id = id * 10 + (c - 48); body[w++] = c; at++; }
    if (at === d0) { slow++; w = start; continue; }
    if (neg) id = -id;
    body[w++] = TAB;
    let ok = true;
    for (let f = 1; f <= 3 && ok; f++) {
      at = expect(v, at, P[f]);
      if (at < 0) { ok = false; break; }
      if (v[at] === 110) { at += 4; body[w++] = BS; body[w++] = 78; body[w++] = TAB; continue; } // null → \N
      if (v[at] !== Q) { ok = false; break; }
      at++;
      const s = at;
      while ((c = v[at]) !== Q) { if (c === BS || c < 32 || c > 126 || at >= v.length) { ok = false; break; } at++; }
      if (!ok) break;
      if (f === 3) { // a timestamp: YYYY-MM-DD HH:MM:SS[.ffffff] → whole seconds
        if (at - s < 19) { ok = false; break; }
        for (let k = 0; k < 19; k++) { const b = v[s + k]; if ((k === 4 || k === 7) ? b !== 45 : k === 10 ? b !== 32 : (k === 13 || k === 16) ? b !== 58 : (b < 48 || b > 57)) { ok = false; break; } body[w++] = b; }
      } else {
        for (let k = s; k < at; k++) body[w++] = v[k];
      }
      at++;
      body[w++] = TAB;
    }
    if (!ok) { slow++; w = start; continue; }
    at = expect(v, at, P[4]);
    if (at < 0) { slow++; w = start; continue; }
    let ver = 0;
    while ((c = v[at]) >= 48 && c <= 57) { ver = ver * 10 + (c - 48); body[w++] = c; at++; }
    if (v[at] !== 125 || at + 1 !== v.length) { slow++; w = start; continue; }
    w = ascii(body, w, `\t0\t${input.partition}\t${input.offset}\t`);
    w = ascii(body, w, ingestedAt);
    body[w++] = NL;
    starts[rows] = start; versions[rows] = ver;
    const seen = newest.get(id);
    if (seen === undefined || versions[seen] < ver) newest.set(id, rows);
    rows++;
  }
  starts[rows] = w;
  // all rows fresh and distinct: the body as it is
  if (newest.size !== rows) throw new Error('the prototype handles distinct keys only');
  return { body: Buffer.from(body.buffer, 0, w), rows, slow };
}
const bodies = {};
for (let r = 0; r <= rounds; r++) {
  const batches = Array.from({ length: 10 }, batch);
  for (const [name, run] of [['TableSink.write', async (b) => { await sink.write(b); return bodyA; }], ['bytes', async (b) => writeBytes(b, '2026-11-27 03:30:00').body.toString('latin1')]]) {
    globalThis.gc?.();
    const cpu0 = process.cpuUsage();
    let last;
    for (const b of batches) last = await run(b);
    const cpu = process.cpuUsage(cpu0);
    if (r > 0) console.log(`round ${r} ${name.padEnd(16)} ${(((cpu.user + cpu.system) * 1000) / (10 * ROWS)).toFixed(0)} ns CPU per row`);
    bodies[name] = last;
  }
  const strip = (body) => body.split('\n').map((line) => line.slice(0, line.lastIndexOf('\t'))).join('\n');
  if (strip(bodies['TableSink.write']) !== strip(bodies.bytes)) throw new Error('the two bodies differ');
}
