import assert from 'node:assert/strict';
import { unschedulableRetryMs } from './bind.js';

describe('unit: when an unschedulable sandbox is looked at again', () => {
  const cases: { name: string; windowLeftMs: number; retryMs: number }[] = [
    { name: 'inside the scheduling window: just after it closes, to say Stalled', windowLeftMs: 4000, retryMs: 4250 },
    {
      name: 'after the window: the 5 min backstop (node changes requeue it sooner)',
      windowLeftMs: 0,
      retryMs: 300_000,
    },
    { name: 'long after the window: the backstop too', windowLeftMs: -60_000, retryMs: 300_000 },
  ];
  for (const c of cases) it(c.name, () => assert.equal(unschedulableRetryMs(c.windowLeftMs), c.retryMs));
});
