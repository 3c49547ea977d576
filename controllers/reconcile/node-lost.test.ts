import assert from 'node:assert/strict';
import { Sandbox } from '../../crds/sandbox.js';
import type { NodeHealth } from '../nodes/health.js';
import { nodeAction, type NodeAction } from './node-lost.js';

const sbx = (spec: Record<string, unknown> = {}, status: Record<string, unknown> = {}) =>
  Sandbox.parse({
    apiVersion: 'sandpit.dev/v1alpha1',
    kind: 'Sandbox',
    metadata: { name: 's', namespace: 'ns', uid: 'u1', generation: 1 },
    spec: { containers: [{ name: 'main', image: 'busybox' }], ...spec },
    status: { phase: 'Running', nodeName: 'n1', ...status },
  });

describe('unit: what a bound sandbox does about the health of its node', () => {
  const cases: { name: string; sandbox: Sandbox; node?: string; health: NodeHealth; action: NodeAction }[] = [
    { name: 'Ready: apply on the node', sandbox: sbx(), health: 'Ready', action: 'apply' },
    { name: 'NotReady: wait, marked Unknown', sandbox: sbx(), health: 'NotReady', action: 'wait' },
    { name: 'Lost, restartPolicy Always: reschedule', sandbox: sbx(), health: 'Lost', action: 'reschedule' },
    {
      name: 'Lost, restartPolicy OnFailure: reschedule',
      sandbox: sbx({ restartPolicy: 'OnFailure' }),
      health: 'Lost',
      action: 'reschedule',
    },
    {
      name: 'Lost, restartPolicy Never: fail',
      sandbox: sbx({ restartPolicy: 'Never' }),
      health: 'Lost',
      action: 'fail',
    },
    { name: 'Lost, pinned by spec.nodeName: fail', sandbox: sbx({ nodeName: 'n1' }), health: 'Lost', action: 'fail' },
    {
      name: 'Lost, only assumed there (the binding not in the cache yet): fail, there is no stored binding to clear',
      sandbox: sbx({}, { nodeName: undefined, phase: 'Pending' }),
      health: 'Lost',
      action: 'fail',
    },
    {
      name: 'Failed for a lost node and the node is back: stays Failed',
      sandbox: sbx({}, { phase: 'Failed', reason: 'NodeLost' }),
      health: 'Ready',
      action: 'done',
    },
    {
      name: 'Failed for another reason, node Ready: apply (the agent owns that status)',
      sandbox: sbx({}, { phase: 'Failed', reason: 'Error' }),
      health: 'Ready',
      action: 'apply',
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(nodeAction(c.sandbox, c.node ?? 'n1', c.health), c.action));
  }
});
