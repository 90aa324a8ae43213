// The CopyData messages of node-postgres's parser, handed over in place (src/capture/pg-copy-patch.ts):
// the same rows as the parser's own view of each message gave, whatever the socket's chunks, and
// every other message parsed by node-postgres as before. The real server: the producer's COPY
// tests (test/integration/producer-copy-rows.test.ts) and every drain.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { copyDataSpan, pgCopyPatch } from '../../src/capture/pg-copy-patch.js';

const fromPg = createRequire(createRequire(import.meta.url).resolve('pg'));
const { Parser } = fromPg('pg-protocol/dist/parser.js') as { Parser: new () => { parse(b: Buffer, cb: (m: Record<string, unknown>) => void): void } };

/** A backend message: its code, its length (counting itself), its body. */
const frame = (code: string, body: Buffer) => {
  const head = Buffer.alloc(5);
  head.write(code, 0, 'latin1');
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
};
const cstring = (s: string) => Buffer.from(`${s}\0`);

describe('node-postgres CopyData in place', () => {
  it('took', () => {
    expect(pgCopyPatch.active).toBe(true);
  });

  it('gives every row of a COPY, whatever the chunks, and parses the other messages as node-postgres does', () => {
    const rows = Array.from({ length: 300 }, (_, i) => Buffer.from(`${i}\t${'x'.repeat(i % 97)}\tf\n`));
    const stream = Buffer.concat([
      frame('H', Buffer.from([0, 0, 3, 0, 0, 0, 0, 0, 0])), // CopyOutResponse: text, 3 columns
      ...rows.map((r) => frame('d', r)),
      frame('c', Buffer.alloc(0)),
      frame('C', cstring('COPY 300')),
      frame('Z', Buffer.from('I')),
    ]);
    for (const chunkSize of [stream.length, 4096, 1000, 7, 1]) {
      const parser = new Parser();
      const seen: Array<Buffer | string> = [];
      const others: Array<Record<string, unknown>> = [];
      let promised: Buffer | null = null; // the bytes a `more` said the next row comes from
      let mores = 0;
      for (let at = 0; at < stream.length; at += chunkSize) {
        parser.parse(stream.subarray(at, at + chunkSize), (m) => {
          if (m.name !== 'copyData') return void others.push({ ...m });
          const { bytes, start, end, more } = copyDataSpan(m as unknown as { chunk: Buffer });
          if (promised !== null) expect(bytes).toBe(promised); // within the same parse call, from the same bytes
          promised = more ? bytes : null;
          if (more) mores++;
          seen.push(Buffer.from(bytes.subarray(start, end))); // copied now: valid only during the call
          expect((m.chunk as Buffer).equals(bytes.subarray(start, end))).toBe(true);
        });
        expect(promised, 'a `more` whose row came in the same parse call').toBe(null);
      }
      expect(seen, `chunks of ${chunkSize}`).toEqual(rows);
      if (chunkSize === stream.length) expect(mores).toBe(rows.length - 1); // all in one buffer: only the last row is alone
      if (chunkSize === 1) expect(mores).toBe(0);
      expect(others.map((m) => m.name)).toEqual(['copyOutResponse', 'copyDone', 'commandComplete', 'readyForQuery']);
      expect(others[0]).toMatchObject({ binary: false, columnTypes: [0, 0, 0] });
      expect(others[2]).toMatchObject({ text: 'COPY 300' });
      expect(others[3]).toMatchObject({ status: 'I' });
    }
  });

  it('reads a message of another parser (no patch) by its chunk', () => {
    const chunk = Buffer.from('1\tx\n');
    expect(copyDataSpan({ chunk })).toEqual({ bytes: chunk, start: 0, end: chunk.length, more: false });
  });
});
