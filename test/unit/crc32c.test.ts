// The record batch's checksum (src/kafka/crc32c.ts) against kafkajs's own, byte-wise one.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { crc32c } from '../../src/kafka/crc32c.js';

const require = createRequire(import.meta.url);
const kafkajsCrc32C = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (b: Buffer) => number;

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}

describe('crc32c', () => {
  it('gives the CRC-32C check value of "123456789" (0xE3069283)', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });

  it('equals kafkajs for every length 0–300 and for large buffers, at any offset into their memory', () => {
    const next = rng(14);
    const sizes = [...Array.from({ length: 301 }, (_, i) => i), 4095, 65536, 1_000_003];
    for (const size of sizes) {
      const whole = Buffer.alloc(size + 7);
      for (let i = 0; i < whole.length; i++) whole[i] = next() & 0xff;
      const shift = size % 7; // subarrays that do not start at their memory's first byte, like the encoder's
      const buf = whole.subarray(shift, shift + size);
      expect(crc32c(buf), `size ${size}`).toBe(kafkajsCrc32C(buf));
    }
  });

  it('all-zero and all-0xff buffers, where a table-index slip would show', () => {
    for (const size of [1, 7, 8, 9, 15, 16, 17, 1000]) {
      expect(crc32c(Buffer.alloc(size, 0))).toBe(kafkajsCrc32C(Buffer.alloc(size, 0)));
      expect(crc32c(Buffer.alloc(size, 0xff))).toBe(kafkajsCrc32C(Buffer.alloc(size, 0xff)));
    }
  });
});
