import { describe, expect, it } from 'vitest';
import { chunkBySize } from '../../src/capture/publisher.js';
import { backoffDelay } from '../../src/common/retry.js';
import { maskUrl, redactText } from '../../src/common/redact.js';

const msg = (key: string, bytes: number) => ({ key, value: Buffer.alloc(bytes) });

describe('chunkBySize', () => {
  it('keeps order and cuts before the budget is exceeded', () => {
    const chunks = chunkBySize([msg('1', 40), msg('2', 40), msg('3', 40), msg('4', 10)], 100);
    expect(chunks.map((c) => c.map((m) => m.key))).toEqual([['1', '2'], ['3', '4']]);
  });
  it('sends a message larger than the budget alone', () => {
    const chunks = chunkBySize([msg('1', 10), msg('2', 500), msg('3', 10)], 100);
    expect(chunks.map((c) => c.map((m) => m.key))).toEqual([['1'], ['2'], ['3']]);
  });
  it('returns nothing for nothing', () => {
    expect(chunkBySize([], 100)).toEqual([]);
  });
  it('gives messages that fit the budget together as one run, up to the budget exactly', () => {
    const fit = [msg('1', 40), msg('2', 40), msg('3', 17)]; // keys count: 41 + 41 + 18 = 100
    expect(chunkBySize(fit, 100).map((c) => c.map((m) => m.key))).toEqual([['1', '2', '3']]);
    const over = [...fit, msg('4', 0)];
    expect(chunkBySize(over, 100).map((c) => c.map((m) => m.key))).toEqual([['1', '2', '3'], ['4']]);
  });
});

describe('backoffDelay', () => {
  it('doubles from 250 ms and stays within ±20 % and under the cap', () => {
    for (let i = 0; i < 200; i++) {
      expect(backoffDelay(1, 30_000)).toBeGreaterThanOrEqual(200);
      expect(backoffDelay(1, 30_000)).toBeLessThanOrEqual(300);
      expect(backoffDelay(3, 30_000)).toBeGreaterThanOrEqual(800);
      expect(backoffDelay(3, 30_000)).toBeLessThanOrEqual(1200);
      expect(backoffDelay(50, 30_000)).toBeLessThanOrEqual(30_000);
      expect(backoffDelay(50, 30_000)).toBeGreaterThanOrEqual(24_000);
    }
  });
});

describe('redaction', () => {
  it('masks the password of a URL and secrets inside free text', () => {
    expect(maskUrl('postgres://app:hunter2@db:5432/x')).toBe('postgres://app:***@db:5432/x');
    expect(maskUrl('http://127.0.0.1:8123')).toBe('http://127.0.0.1:8123');
    expect(redactText('connect to postgres://app:hunter2@db/x failed: hunter2 rejected', ['hunter2'])).toBe(
      'connect to postgres://app:***@db/x failed: *** rejected',
    );
  });
});
