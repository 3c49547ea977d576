import assert from 'node:assert/strict';
import { Sandbox } from '../../crds/sandbox.js';
import { needsApply } from './apply.js';

const sbx = (generation: number, status: Record<string, unknown>) =>
  Sandbox.parse({
    apiVersion: 'sandpit.dev/v1alpha1',
    kind: 'Sandbox',
    metadata: { name: 's', namespace: 'ns', uid: 'u1', generation },
    spec: { containers: [{ name: 'main', image: 'busybox' }] },
    status: { phase: 'Running', nodeName: 'n1', ...status },
  });

describe('unit: whether a sandbox goes to its agent again', () => {
  const cases: { name: string; sandbox: Sandbox; appliedHere: boolean; apply: boolean; refresh: boolean }[] = [
    {
      name: 'never applied since this controller started: apply',
      sandbox: sbx(2, { observedGeneration: 2 }),
      appliedHere: false,
      apply: true,
      refresh: false,
    },
    {
      name: 'applied and observed: nothing to do',
      sandbox: sbx(2, { observedGeneration: 2 }),
      appliedHere: true,
      apply: false,
      refresh: false,
    },
    {
      name: 'applied, the agent has not reported this generation yet: apply (idempotent)',
      sandbox: sbx(3, { observedGeneration: 2 }),
      appliedHere: true,
      apply: true,
      refresh: false,
    },
    {
      name: 'marked NodeUnreachable during an outage: apply and write what the agent answers',
      sandbox: sbx(2, { observedGeneration: 2, phase: 'Unknown', reason: 'NodeUnreachable' }),
      appliedHere: true,
      apply: true,
      refresh: true,
    },
  ];
  for (const c of cases) {
    it(c.name, () =>
      assert.deepEqual(needsApply(c.sandbox, c.appliedHere), { apply: c.apply, refreshStatus: c.refresh }),
    );
  }
});
