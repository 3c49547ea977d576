import assert from 'node:assert/strict';
import { rangeStartsAt } from './blob-download.js';

describe('unit: images: blob resume', () => {
  const table: [contentRange: string, offset: number, want: boolean][] = [
    ['bytes 100-199/200', 100, true],
    ['bytes 0-199/200', 100, false],
    ['bytes 100-199/*', 100, true],
    ['', 100, false],
    ['items 100-199/200', 100, false],
  ];
  for (const [cr, offset, want] of table) {
    it(`${JSON.stringify(cr)} at offset ${offset}: ${want ? 'resumes' : 'refused'}`, () => {
      assert.equal(rangeStartsAt(cr, offset), want);
    });
  }
});
