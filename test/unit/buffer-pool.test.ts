import { describe, expect, it } from 'vitest';
import { BufferPool, ByteBuffer, Lease } from '../../src/common/bytes.js';
import { CopyRows, upsertValues, type ColumnWriter } from '../../src/tables/copy-rows.js';

const KB = 1024;

describe('buffers reused between batches (issue 14, goal 4)', () => {
  it('hands a buffer given back to the next batch that fits in it, and a new one otherwise', () => {
    const pool = new BufferPool(4, 1024 * KB);
    const first = new Lease(pool);
    const a = first.take(100 * KB);
    const b = first.take(300 * KB);
    expect([a.length, b.length]).toEqual([100 * KB, 300 * KB]);
    expect(a.buffer).not.toBe(b.buffer);
    expect(pool.held).toEqual({ buffers: 0, bytes: 0 });
    first.end();
    expect(pool.held).toEqual({ buffers: 2, bytes: 400 * KB });
    first.end(); // a second end gives nothing back twice
    expect(pool.held.buffers).toBe(2);

    const second = new Lease(pool);
    expect(second.take(200 * KB)).toBe(b); // the one that fits
    expect(second.take(50 * KB)).toBe(a);
    const c = second.take(50 * KB); // none left: a new one
    expect(c).not.toBe(a);
    expect(c.length).toBe(50 * KB);
    expect(pool.held.buffers).toBe(0);
  });

  it('keeps at most `keep` buffers, the larger ones, none above `largest`, none too small to matter, no slices', () => {
    const pool = new BufferPool(2, 1024 * KB);
    const lease = new Lease(pool);
    for (const size of [64, 512, 128]) lease.take(size * KB);
    lease.end();
    expect(pool.held).toEqual({ buffers: 2, bytes: 640 * KB }); // 512 and 128 kept, 64 dropped

    pool.give(Buffer.allocUnsafeSlow(2048 * KB)); // above largest
    pool.give(Buffer.allocUnsafeSlow(4 * KB)); // too small
    pool.give(Buffer.allocUnsafeSlow(900 * KB).subarray(0, 800 * KB)); // part of a larger buffer
    expect(pool.held).toEqual({ buffers: 2, bytes: 640 * KB });

    const kept = pool.take(500 * KB);
    expect(() => pool.give(pool.take(1))).not.toThrow();
    pool.give(kept);
    expect(() => pool.give(kept)).toThrow(/twice/);
  });

  it('lends what a ByteBuffer grows into, and all of it comes back at the end', () => {
    const pool = new BufferPool(8, 1024 * KB);
    const lease = new Lease(pool);
    const out = new ByteBuffer(32 * KB, lease);
    for (let i = 0; i < 100 * KB; i++) out.byte(i % 251);
    expect(out.length).toBe(100 * KB);
    for (let i = 0; i < 100 * KB; i += 4099) expect(out.buf[i]).toBe(i % 251); // kept while growing
    lease.end();
    expect(pool.held).toEqual({ buffers: 3, bytes: (32 + 64 + 128) * KB });
  });

  it('reads rows and writes messages right from buffers that still hold an earlier batch’s bytes', () => {
    const pool = new BufferPool(8, 4096 * KB);
    // An earlier batch's leftovers: buffers full of bytes that would read as tabs, newlines and
    // escapes, were anything read past what the new batch wrote.
    const earlier = new Lease(pool);
    for (let i = 0; i < 4; i++) earlier.take(256 * KB).fill('\t\\N\n"');
    earlier.end();
    expect(pool.held.buffers).toBe(4);

    const writers: ColumnWriter[] = [
      { prefix: Buffer.from('"id":'), wire: 'string', encode: (v) => JSON.stringify(v) },
      { prefix: Buffer.from('"name":'), wire: 'string', encode: (v) => JSON.stringify(v) },
    ];
    const lease = new Lease(pool);
    const rows = new CopyRows(3, lease); // id, name, version
    const texts = Array.from({ length: 3000 }, (_, k) => `${k}\tname ${k}${k % 7 === 0 ? '\\tx' : ''}\t${k + 10}\n`);
    for (const t of texts) {
      const b = Buffer.from(t);
      rows.add(b, 0, b.length);
    }
    const values = upsertValues(rows, writers, Array.from({ length: rows.count }, (_, r) => (r % 5 === 4 ? -1 : r)), 2, lease);
    expect(pool.held.buffers).toBeLessThan(4); // taken from the pool
    expect(rows.count).toBe(3000);
    for (const k of [0, 1, 7, 998, 2999]) expect([rows.text(k, 0), rows.text(k, 1)]).toEqual([String(k), `name ${k}${k % 7 === 0 ? '\tx' : ''}`]);
    for (const k of [0, 4, 7, 2998, 2999]) {
      const want = k % 5 === 4 ? null : `{"id":"${k}","name":${JSON.stringify(`name ${k}${k % 7 === 0 ? '\tx' : ''}`)},"_op":"upsert","_version":${k + 10}}`;
      expect(values[k]?.toString() ?? null).toBe(want);
    }
    lease.end();
  });
});
