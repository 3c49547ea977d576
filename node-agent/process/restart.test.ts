import assert from 'node:assert/strict';
import { restartDelay, shouldRestart } from './restart.js';

describe('restart policy (unit)', () => {
  it('follows restartPolicy', () => {
    assert.equal(shouldRestart('Always', 0), true);
    assert.equal(shouldRestart('OnFailure', 0), false);
    assert.equal(shouldRestart('OnFailure', 3), true);
    assert.equal(shouldRestart('Never', 3), false);
  });
  it('backs off exponentially up to the cap', () => {
    assert.deepEqual([0, 1, 2, 3, 10].map((n) => restartDelay(n, { baseMs: 10, maxMs: 100 })), [10, 20, 40, 80, 100]);
  });
});
