import assert from 'node:assert/strict';
import { backoffAfterExit, restartDelay, shouldRestart } from './restart.js';

const kubelet = { baseMs: 10_000, maxMs: 300_000 };
const MIN = 60_000;

describe('unit: restart policy', () => {
  it('follows restartPolicy', () => {
    assert.equal(shouldRestart('Always', 0), true);
    assert.equal(shouldRestart('OnFailure', 0), false);
    assert.equal(shouldRestart('OnFailure', 3), true);
    assert.equal(shouldRestart('Never', 3), false);
  });
  it('backs off exponentially up to the cap', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 10].map((n) => restartDelay(n, { baseMs: 10, maxMs: 100 })),
      [10, 20, 40, 80, 100],
    );
  });

  const cases: { name: string; step: number; ranMs: number; want: { step: number; delayMs: number } }[] = [
    { name: 'first crash, short run', step: 0, ranMs: 1_000, want: { step: 0, delayMs: 10_000 } },
    { name: 'third crash in a row', step: 2, ranMs: 1_000, want: { step: 2, delayMs: 40_000 } },
    { name: 'long in a row: at the cap', step: 9, ranMs: 5 * MIN, want: { step: 9, delayMs: 300_000 } },
    {
      name: 'ran exactly 10 minutes: not yet stable (kubelet: more than twice the cap)',
      step: 9,
      ranMs: 10 * MIN,
      want: { step: 9, delayMs: 300_000 },
    },
    { name: 'ran over 10 minutes: starts over', step: 9, ranMs: 10 * MIN + 1, want: { step: 0, delayMs: 10_000 } },
    { name: 'a long good run after a few crashes', step: 3, ranMs: 60 * MIN, want: { step: 0, delayMs: 10_000 } },
  ];
  for (const t of cases) {
    it(`back-off after an exit: ${t.name}`, () => assert.deepEqual(backoffAfterExit(t.step, t.ranMs, kubelet), t.want));
  }
  it('the reset follows the configured cap (twice it)', () => {
    assert.deepEqual(backoffAfterExit(4, 801, { baseMs: 50, maxMs: 400 }), { step: 0, delayMs: 50 });
    assert.deepEqual(backoffAfterExit(4, 800, { baseMs: 50, maxMs: 400 }), { step: 4, delayMs: 400 });
  });
});
