import assert from 'node:assert/strict';
import type { Sandbox } from '../../crds/sandbox.js';
import type { SandboxNode } from '../../crds/sandboxnode.js';
import { nodeChangeMatters, sandboxesToWake, sandboxUpdateNeedsReconcile, wakesWaitingOnly } from './triggers.js';

const sandbox = (metadata: Partial<Sandbox['metadata']> = {}, status: Sandbox['status'] = {}): Sandbox =>
  ({
    apiVersion: 'sandpit.dev/v1alpha1',
    kind: 'Sandbox',
    metadata: { name: 's', namespace: 'ns', uid: 'u1', resourceVersion: '1', generation: 1, ...metadata },
    spec: { containers: [{ name: 'main', image: 'busybox' }] },
    status,
  }) as Sandbox;

const node = (rv: string, status: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}): SandboxNode =>
  ({
    apiVersion: 'sandpit.dev/v1alpha1',
    kind: 'SandboxNode',
    metadata: { name: 'n1', resourceVersion: rv, ...metadata },
    spec: {},
    status: { endpoint: 'https://n1:10250', sandboxes: 1, imageDiskUsageBytes: 10, ...status },
  }) as SandboxNode;

describe('unit: which Sandbox updates need a reconcile', () => {
  const base = sandbox({}, { phase: 'Running', nodeName: 'n1' });
  const cases: { name: string; next: Sandbox; reconcile: boolean }[] = [
    { name: 'a resync (same resourceVersion)', next: base, reconcile: true },
    {
      name: 'the agent reporting status only',
      next: sandbox({ resourceVersion: '2' }, { phase: 'Running', nodeName: 'n1', sandboxIP: '10.0.0.2' }),
      reconcile: false,
    },
    {
      name: 'a spec edit (generation)',
      next: sandbox({ resourceVersion: '2', generation: 2 }, base.status),
      reconcile: true,
    },
    {
      name: 'deletion',
      next: sandbox({ resourceVersion: '2', deletionTimestamp: '2026-01-01T00:00:00Z' }, base.status),
      reconcile: true,
    },
    {
      name: 'finalizers changed',
      next: sandbox({ resourceVersion: '2', finalizers: ['sandpit.dev/cleanup'] }, base.status),
      reconcile: true,
    },
    { name: 'unbound', next: sandbox({ resourceVersion: '2' }, { phase: 'Running' }), reconcile: true },
    {
      name: 'phase changed',
      next: sandbox({ resourceVersion: '2' }, { phase: 'Succeeded', nodeName: 'n1' }),
      reconcile: true,
    },
  ];
  for (const c of cases) it(c.name, () => assert.equal(sandboxUpdateNeedsReconcile(base, c.next), c.reconcile));
});

describe('unit: which SandboxNode changes wake which sandboxes', () => {
  it('a node rewriting only its sandbox count or image disk usage matters to nobody bound to it', () => {
    assert.equal(nodeChangeMatters(node('1'), node('2', { sandboxes: 5, imageDiskUsageBytes: 99 })), false);
    assert.equal(nodeChangeMatters(node('1'), node('2', { endpoint: 'https://n1:10251' })), true);
    assert.equal(nodeChangeMatters(node('1'), node('2', {}, { labels: { zone: 'a' } })), true);
  });

  const cases: { name: string; old?: SandboxNode; next: SandboxNode; waitingOnly: boolean }[] = [
    { name: 'first sighting: everyone concerned', next: node('1'), waitingOnly: false },
    {
      name: 'a relist (same resourceVersion): everyone concerned',
      old: node('1'),
      next: node('1'),
      waitingOnly: false,
    },
    { name: 'a count moved: only the waiting', old: node('1'), next: node('2', { sandboxes: 2 }), waitingOnly: true },
    {
      name: 'a condition changed: everyone concerned',
      old: node('1'),
      next: node('2', { conditions: [{ type: 'Ready', status: 'False' }] }),
      waitingOnly: false,
    },
  ];
  for (const c of cases) it(c.name, () => assert.equal(wakesWaitingOnly(c.old, c.next), c.waitingOnly));

  it('wakes the unbound always, those on the node unless waitingOnly, never those elsewhere', () => {
    const all = [
      sandbox({ name: 'waiting' }),
      sandbox({ name: 'here' }, { nodeName: 'n1' }),
      sandbox({ name: 'elsewhere' }, { nodeName: 'n2' }),
    ];
    assert.deepEqual(sandboxesToWake(all, 'n1', false), ['ns/waiting', 'ns/here']);
    assert.deepEqual(sandboxesToWake(all, 'n1', true), ['ns/waiting']);
  });
});
