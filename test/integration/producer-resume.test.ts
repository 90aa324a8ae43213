// Resume points (issue 14): after the first batch of a drain, each claim starts after the highest
// key (flag mode) or change-log version the batch before claimed, instead of walking past the rows
// the batches in flight hold. A row the claims passed by while another transaction held it must
// still be published before the drain ends: the drain ends only on a claim from the start.
// Deterministic: the other transaction releases its row from inside a publish, once the claims
// are past it, and at least three full batches are still to come.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createPool } from '../../src/capture/db.js';
import { countPending, drainTable, loadSources } from '../../src/capture/producer.js';
import { createPublisher, type Publisher } from '../../src/capture/publisher.js';
import { createLogger } from '../../src/common/logger.js';
import { captureObjects } from '../../src/tables/spec.js';
import { runCli } from '../support/cli.js';
import { readTopic, topicMessageCount } from '../support/kafka.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { withPg } from '../support/pg.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'streamer-resume-'));
const isolated: Isolated[] = [];
afterAll(async () => {
  for (const i of isolated) await i.cleanup();
});

const cases = [
  {
    mode: 'flag mode, a two-column key',
    ddl: 'CREATE TABLE shop.lines (order_id bigint, line int2, note text, sent boolean DEFAULT false, PRIMARY KEY (order_id, line))',
    table: { flagColumn: 'sent' },
    fill: `INSERT INTO shop.lines (order_id, line, note) SELECT (g + 1) / 2, 2 - g % 2, 'n' || g FROM generate_series(1, 40) g`,
    keyOf: (n: number) => `["${Math.floor((n + 1) / 2)}", "${2 - (n % 2)}"]`, // PostgreSQL's json_build_array text
    // the third row, (2, 1): held by another transaction while the claims pass it
    hold: () => 'SELECT 1 FROM shop.lines WHERE order_id = 2 AND line = 1 FOR UPDATE',
  },
  {
    mode: 'change-log mode',
    ddl: 'CREATE TABLE shop.lines (id bigint PRIMARY KEY, note text)',
    table: { flagColumn: null },
    fill: `INSERT INTO shop.lines SELECT g, 'n' || g FROM generate_series(1, 40) g`,
    keyOf: (n: number) => String(n),
    hold: (changes: string) => `SELECT 1 FROM ${changes} WHERE id = '3' FOR UPDATE`,
  },
];

describe('a drain resumes after the last full batch, and still publishes a row it passed by', () => {
  for (const c of cases) {
    it(c.mode, async () => {
      const run = Math.random().toString(36).slice(2, 8);
      const file = path.join(dir, `${run}.json`);
      const topic = `lines_${run}`;
      writeFileSync(file, JSON.stringify({ tables: { 'shop.lines': { topic, ...c.table } } }));
      const iso = await isolate({ STREAMER_TABLES: 'shop.lines', STREAMER_CONFIG: file, KAFKA_TOPIC: '', PRODUCER_BATCH_SIZE: '5', PRODUCER_CONCURRENCY: '2' });
      isolated.push(iso);
      await withPg(iso.config, (db) => db.query(`CREATE SCHEMA shop; ${c.ddl}`));
      const m = await runCli(['migrate'], iso.env);
      expect(m.code, m.stderr).toBe(0);
      await withPg(iso.config, (db) => db.query(c.fill));

      const logger = createLogger({ level: 'silent' });
      const [source] = await withPg(iso.config, (db) => loadSources(db, iso.config));
      const holder = new pg.Client({ connectionString: iso.config.databaseUrl });
      await holder.connect();
      await holder.query('BEGIN');
      expect((await holder.query(c.hold(captureObjects(source!.spec).changes))).rowCount).toBe(1);
      const pool = createPool(iso.config, logger, 'streamer-resume-test');
      const kafka = createPublisher(iso.config, logger);
      await kafka.connect();
      let released = false;
      const published: string[] = [];
      const publisher: Publisher = {
        ...kafka,
        publish: async (t, messages) => {
          const refused = await kafka.publish(t, messages);
          for (const msg of messages) published.push(msg.key as string);
          // Once the claims are 20 rows in (at least three full batches to go): the holder lets
          // its row go, pending as before.
          if (!released && published.length >= 20) {
            released = true;
            await holder.query('ROLLBACK');
          }
          return refused;
        },
      };
      try {
        await drainTable(pool, publisher, iso.config, logger, source!);
        expect(released).toBe(true);
        expect(await countPending(pool, [source!])).toBe(0);
        // Every row once: the held one too, after the others around it.
        const want = Array.from({ length: 40 }, (_, i) => c.keyOf(i + 1));
        expect([...published].sort()).toEqual([...want].sort());
        expect(published.indexOf(c.keyOf(3))).toBeGreaterThan(published.indexOf(c.keyOf(4)));
        const messages = await readTopic(iso.config, 40, topic);
        expect(messages.map((msg) => msg.key).sort()).toEqual([...want].sort());
        expect(await topicMessageCount(iso.config, topic)).toBe(40);
      } finally {
        await holder.end().catch(() => {});
        await kafka.close();
        await pool.end().catch(() => {});
      }
    });
  }
});
