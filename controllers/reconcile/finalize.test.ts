import assert from 'node:assert/strict';
import type { NodeHealth } from '../nodes/health.js';
import { deletionPlan, type DeletionPlan } from './finalize.js';

describe('unit: what the deletion of a sandbox waits for', () => {
  const cases: { name: string; node?: string; health?: NodeHealth; gone: boolean; plan: DeletionPlan }[] = [
    { name: 'never bound: nothing to confirm', gone: false, plan: 'release' },
    {
      name: 'node Ready: the agent deletes and confirms',
      node: 'n1',
      health: 'Ready',
      gone: false,
      plan: 'delete-on-node',
    },
    {
      name: 'node NotReady: wait, it may come back with the sandbox running',
      node: 'n1',
      health: 'NotReady',
      gone: false,
      plan: 'wait-for-node',
    },
    { name: 'node Lost: release unconfirmed', node: 'n1', health: 'Lost', gone: false, plan: 'release-unconfirmed' },
    {
      name: 'SandboxNode deleted: release unconfirmed, whatever its last health',
      node: 'n1',
      health: 'NotReady',
      gone: true,
      plan: 'release-unconfirmed',
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(deletionPlan(c.node, c.health, c.gone), c.plan));
  }
});
