import assert from 'node:assert/strict';
import { LeaseTracker, nodeHealth } from './health.js';

describe('unit: node health from leases', () => {
  const seen = { record: 'x', seenAt: 1000, durationMs: 10_000 };

  it('is Ready while the lease keeps changing and the agent says Ready', () => {
    assert.equal(nodeHealth(seen, true, 5000, 30_000, 0), 'Ready');
    assert.equal(nodeHealth(seen, false, 5000, 30_000, 0), 'NotReady');
  });

  it('is NotReady once silent for a lease duration, Lost after the grace as well', () => {
    assert.equal(nodeHealth(seen, true, 1000 + 10_001, 30_000, 0), 'NotReady');
    assert.equal(nodeHealth(seen, true, 1000 + 40_001, 30_000, 0), 'Lost');
  });

  it('is NotReady with no lease at all, and Lost once that lasts past duration and grace', () => {
    assert.equal(nodeHealth(undefined, true, 1000, 30_000, 0), 'NotReady');
    assert.equal(nodeHealth(undefined, true, 80_000, 30_000, 0), 'Lost');
  });

  it('times changes by the local clock, not by the renewTime written in the lease', () => {
    const t = new LeaseTracker();
    t.observe('n', { holderIdentity: 'a', renewTime: '1999-01-01T00:00:00.000000Z', leaseDurationSeconds: 10 }, 100_000);
    assert.equal(t.health('n', { status: { conditions: [{ type: 'Ready', status: 'True', reason: 'R', message: '', lastTransitionTime: '' }] } } as never, 0, 105_000), 'Ready');
    t.observe('n', { holderIdentity: 'a', renewTime: '1999-01-01T00:00:00.000000Z', leaseDurationSeconds: 10 }, 200_000);
    assert.equal(t.health('n', undefined, 1_000_000, 200_000), 'NotReady', 'an unchanged record is not a renewal');
  });
});
