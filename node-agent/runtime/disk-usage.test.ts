import assert from 'node:assert/strict';
import { DiskUsageCache } from './disk-usage.js';

describe('unit: runtime image disk usage', () => {
  it('walks the store at most once a minute, and keeps the last figure when a walk fails', () => {
    let walks = 0;
    let fail = false;
    const cache = new DiskUsageCache({
      diskUsage: () => {
        walks++;
        if (fail) throw new Error('ENOENT');
        return { total: walks * 100 };
      },
    });
    assert.equal(cache.bytes(0), 100);
    assert.equal(cache.bytes(59_000), 100);
    assert.equal(walks, 1);
    assert.equal(cache.bytes(61_000), 200);
    fail = true;
    assert.equal(cache.bytes(122_000), 200);
    assert.equal(walks, 3);
  });
});
