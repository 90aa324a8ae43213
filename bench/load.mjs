#!/usr/bin/env node
// The application's load, as a separate process: single-row INSERT transactions (autocommit) into
// user_login at a steady rate, each timed from send to PostgreSQL's acknowledgement of the COMMIT.
// With --mode update, single-row UPDATEs instead: update k sets event_type = 'upd_<k>' on row
// (k mod --rows) + 1, so that each update has a value of its own to look for.
//
//   node bench/load.mjs --rate 1000 --seconds 60 --out /tmp/load.tsv     (DATABASE_URL from env)
//
// Writes one line per row to --out: `id <TAB> sendMs <TAB> ackMs` (wall clock, sub-ms) — for
// updates `upd_<k> <TAB> sendMs <TAB> ackMs` — and a JSON summary on stdout. The harness joins
// these with the moment each id (or value) first shows up in ClickHouse.
// Sending is open-loop: row i is due at start + i/rate, whether or not earlier inserts have
// returned (up to --connections in flight), so a slow database shows as latency, not a lower rate.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { nowMs, serviceUrls, sleep, summarize } from './common.mjs';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '60' },
    connections: { type: 'string', default: '8' },
    out: { type: 'string' },
    mode: { type: 'string', default: 'insert' },
    rows: { type: 'string', default: '100000' },
  },
});
const rate = Number(values.rate);
const seconds = Number(values.seconds);
const total = Math.round(rate * seconds);
const pool = new pg.Pool({ connectionString: serviceUrls().databaseUrl, max: Number(values.connections), application_name: 'bench-load' });

// Open the connections before the clock starts.
await Promise.all(Array.from({ length: Number(values.connections) }, async () => (await pool.connect()).release()));

const INSERT = `INSERT INTO user_login (username, event_type, event_time) VALUES ($1, 'login', clock_timestamp()) RETURNING id`;
const UPDATE = `UPDATE user_login SET event_type = $1 WHERE id = $2 RETURNING id`;
const updates = values.mode === 'update';
const tableRows = Number(values.rows);
const ids = new Float64Array(total);
const sent = new Float64Array(total);
const acked = new Float64Array(total);
let errors = 0;
let inFlight = 0;
const pending = [];
const start = nowMs();
let i = 0;
while (i < total) {
  const due = Math.min(total, Math.floor(((nowMs() - start) * rate) / 1000) + 1);
  for (; i < due; i++) {
    const k = i;
    sent[k] = nowMs();
    inFlight++;
    pending.push(
      (updates ? pool.query(UPDATE, [`upd_${k}`, (k % tableRows) + 1]) : pool.query(INSERT, [`load_${k}`])).then(
        (r) => {
          acked[k] = nowMs();
          ids[k] = Number(r.rows[0].id);
          inFlight--;
        },
        () => {
          errors++;
          inFlight--;
        },
      ),
    );
  }
  await sleep(1);
}
await Promise.all(pending);
const elapsed = (nowMs() - start) / 1000;
await pool.end();

if (values.out) {
  const lines = [];
  for (let k = 0; k < total; k++) if (ids[k]) lines.push(`${updates ? `upd_${k}` : ids[k]}\t${sent[k].toFixed(3)}\t${acked[k].toFixed(3)}`);
  writeFileSync(values.out, `${lines.join('\n')}\n`);
}
const insertMs = summarize(Array.from(acked, (a, k) => a - sent[k]).filter((_, k) => ids[k]));
process.stdout.write(`${JSON.stringify({ rows: total - errors, errors, seconds: elapsed, rate: (total - errors) / elapsed, insertMs, inFlightAtEnd: inFlight })}\n`);
