import assert from 'node:assert/strict';
import { retryDelay } from './registry-retry.js';

describe('unit: images: registry back-off', () => {
  const table: [attempt: number, baseMs: number, retryAfter: number | undefined, want: number][] = [
    [0, 250, undefined, 250],
    [1, 250, undefined, 500],
    [3, 250, undefined, 2000],
    [0, 250, 2, 2000], // Retry-After wins when it asks for longer
    [4, 250, 1, 4000], // ...and our own back-off when that is longer
    [0, 250, 3600, 10_000], // Retry-After is capped at 10 s
    [0, 250, 0, 250],
  ];
  for (const [attempt, base, after, want] of table) {
    it(`attempt ${attempt}, base ${base} ms, Retry-After ${after ?? '-'} s → ${want} ms`, () => {
      assert.equal(retryDelay(attempt, base, after), want);
    });
  }
});
