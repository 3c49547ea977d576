import assert from 'node:assert/strict';
import type { SandboxNode } from '../../crds/sandboxnode.js';
import { LeaseTracker, nodeHealth, toNodeInfo } from './health.js';
import { silentNodeConditions } from './monitor.js';

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
    t.observe(
      'n',
      { holderIdentity: 'a', renewTime: '1999-01-01T00:00:00.000000Z', leaseDurationSeconds: 10 },
      100_000,
    );
    assert.equal(
      t.health(
        'n',
        {
          status: { conditions: [{ type: 'Ready', status: 'True', reason: 'R', message: '', lastTransitionTime: '' }] },
        } as never,
        0,
        105_000,
      ),
      'Ready',
    );
    t.observe(
      'n',
      { holderIdentity: 'a', renewTime: '1999-01-01T00:00:00.000000Z', leaseDurationSeconds: 10 },
      200_000,
    );
    assert.equal(t.health('n', undefined, 1_000_000, 200_000), 'NotReady', 'an unchanged record is not a renewal');
  });

  it('does not count time it could not see (an API server outage) against a node', () => {
    const t = new LeaseTracker();
    const ready = {
      status: { conditions: [{ type: 'Ready', status: 'True', reason: 'R', message: '', lastTransitionTime: '' }] },
    } as never;
    t.observe('renewed', { holderIdentity: 'a', renewTime: '1', leaseDurationSeconds: 10 }, 100_000);
    t.observe('silent', { holderIdentity: 'b', renewTime: '1', leaseDurationSeconds: 10 }, 100_000);
    t.blind(105_000);
    assert.equal(
      t.health('renewed', ready, 20_000, 190_000),
      'Ready',
      'while blind, health stays as it was when contact broke',
    );
    // The list after 60 s without an API server: one agent renewed meanwhile, the other did not.
    t.observe('renewed', { holderIdentity: 'a', renewTime: '2', leaseDurationSeconds: 10 }, 165_000);
    t.observe('silent', { holderIdentity: 'b', renewTime: '1', leaseDurationSeconds: 10 }, 165_000);
    t.seeing(165_000);
    assert.equal(t.isBlind, false);
    assert.equal(t.health('renewed', ready, 20_000, 166_000), 'Ready');
    assert.equal(
      t.health('silent', ready, 20_000, 166_000),
      'Ready',
      'the blind minute is not silence: 6 s seen so far',
    );
    assert.equal(t.health('silent', ready, 20_000, 171_000), 'NotReady', 'silent for a lease duration of seen time');
    assert.equal(
      t.health('silent', ready, 20_000, 191_000),
      'Lost',
      'and lost after the grace, counted from what we could see',
    );
  });

  it('hands the scheduler the pressure conditions that are True, and only those', () => {
    const cond = (type: string, status: 'True' | 'False' | 'Unknown') => ({
      type,
      status,
      reason: 'R',
      message: '',
      lastTransitionTime: '2026-01-01T00:00:00Z',
    });
    const n = {
      apiVersion: 'sandpit.dev/v1alpha1',
      kind: 'SandboxNode',
      metadata: { name: 'a' },
      spec: { unschedulable: false },
      status: {
        conditions: [
          cond('Ready', 'True'),
          cond('MemoryPressure', 'False'),
          cond('DiskPressure', 'True'),
          cond('PIDPressure', 'Unknown'),
        ],
      },
    } as SandboxNode;
    assert.deepEqual(toNodeInfo(n, 'Ready').pressure, ['DiskPressure']);
    assert.deepEqual(
      toNodeInfo({ ...n, status: {} }, 'Ready').pressure,
      [],
      'an agent that reports no pressure conditions (older) is not held back',
    );
  });

  it('turns Ready and the pressure conditions the agent reported Unknown when its lease expires', () => {
    const cond = (type: string) => ({
      type,
      status: 'False' as const,
      reason: 'R',
      message: '',
      lastTransitionTime: '2026-01-01T00:00:00Z',
    });
    const n = {
      apiVersion: 'sandpit.dev/v1alpha1',
      kind: 'SandboxNode',
      metadata: { name: 'a' },
      spec: { unschedulable: false },
      status: { conditions: [cond('Ready'), cond('MemoryPressure'), cond('PIDPressure')] },
    } as SandboxNode;
    const out = silentNodeConditions(n);
    assert.deepEqual(
      out.map((c) => [c.type, c.status, c.reason]),
      [
        ['Ready', 'Unknown', 'NodeLeaseExpired'],
        ['MemoryPressure', 'Unknown', 'NodeLeaseExpired'],
        ['PIDPressure', 'Unknown', 'NodeLeaseExpired'],
      ],
      'DiskPressure was never reported, so it is not invented',
    );
  });
});
