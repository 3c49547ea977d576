import assert from 'node:assert/strict';
import { sharesFromMilliCpu, weightFromShares } from './cpu-shares.js';

describe('unit: CPU weight from CPU requests, as kubelet sets it', () => {
  for (const [milli, shares, weight] of [
    [0, 2, 1], // best effort
    [1, 2, 1], // below the minimum
    [100, 102, 4],
    [250, 256, 10],
    [500, 512, 20],
    [1000, 1024, 39],
    [2000, 2048, 79],
    [256_000, 262_144, 10_000],
    [1_000_000, 262_144, 10_000], // capped at kubelet's MaxShares
  ] as const)
    it(`${milli}m is cpu.shares ${shares} (v1) and cpu.weight ${weight} (v2)`, () => {
      assert.equal(sharesFromMilliCpu(milli), shares);
      assert.equal(weightFromShares(shares), weight);
    });
});
