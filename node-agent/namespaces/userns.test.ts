import assert from 'node:assert/strict';
import { allocateUsernsBlock, parseUsernsRange, USERNS_SIZE } from './userns.js';

describe('unit: user namespace blocks', () => {
  const range = { first: 1 << 20, count: 3 * USERNS_SIZE };
  it('hands out the lowest free whole block and none twice', () => {
    assert.equal(allocateUsernsBlock(range, []), 1 << 20);
    assert.equal(allocateUsernsBlock(range, [1 << 20]), (1 << 20) + USERNS_SIZE);
    assert.equal(allocateUsernsBlock(range, [(1 << 20) + USERNS_SIZE]), 1 << 20);
    assert.equal(
      allocateUsernsBlock(range, [1 << 20, (1 << 20) + USERNS_SIZE, (1 << 20) + 2 * USERNS_SIZE]),
      undefined,
    );
  });
  it('keeps clear of a block from an earlier, differently aligned range that still runs', () => {
    const old = (1 << 20) + USERNS_SIZE / 2; // spans the first half of block 1 and the second half of block 0
    assert.equal(allocateUsernsBlock(range, [old]), (1 << 20) + 2 * USERNS_SIZE);
  });
  it('reads FIRST:COUNT and refuses a range that could hold host system ids', () => {
    assert.deepEqual(parseUsernsRange('1073741824:131072'), { first: 1073741824, count: 131072 });
    assert.throws(() => parseUsernsRange('0:1000000'), /FIRST >= 65536/);
    assert.throws(() => parseUsernsRange('100000:100'), /COUNT >= 65536/);
    assert.throws(() => parseUsernsRange('100000-200000'), /FIRST:COUNT/);
  });
});
