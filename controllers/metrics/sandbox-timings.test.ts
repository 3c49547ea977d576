import assert from 'node:assert/strict';
import type { Sandbox } from '../../crds/sandbox.js';
import { applyToReadySeconds, scheduleSeconds } from './sandbox-timings.js';

const created = '2026-01-01T00:00:00Z';
const t0 = Date.parse(created);
const sandbox = (ready: 'True' | 'False' | undefined, generation = 1, creationTimestamp = created) =>
  ({
    metadata: { name: 's', namespace: 'ns', generation, creationTimestamp },
    status: ready ? { conditions: [{ type: 'Ready', status: ready }] } : {},
  }) as Sandbox;

describe('unit: sandbox timing metrics', () => {
  it('schedule seconds: from creation to the binding, none without a creation time', () => {
    assert.equal(scheduleSeconds(sandbox(undefined), t0 + 1500), 1.5);
    assert.equal(scheduleSeconds(sandbox(undefined, 1, ''), t0 + 1500), undefined);
  });

  const cases: { name: string; old?: Sandbox; obj: Sandbox; seconds?: number }[] = [
    { name: 'the update that makes it Ready: observed', old: sandbox('False'), obj: sandbox('True'), seconds: 3 },
    { name: 'already Ready before: not again', old: sandbox('True'), obj: sandbox('True') },
    { name: 'first seen Ready (a relist after a restart): not observed', obj: sandbox('True') },
    { name: 'an edited sandbox becoming Ready: not observed', old: sandbox('False', 2), obj: sandbox('True', 2) },
    { name: 'not Ready: nothing', old: sandbox(undefined), obj: sandbox('False') },
  ];
  for (const c of cases) it(c.name, () => assert.equal(applyToReadySeconds(c.obj, c.old, t0 + 3000), c.seconds));
});
