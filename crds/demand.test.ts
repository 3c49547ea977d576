import assert from 'node:assert/strict';
import { containerMilliCpu, sandboxDemand } from './demand.js';
import type { SandboxSpec } from './sandbox.js';

const container = (cpu?: string, memory?: string) => ({
  name: 'c',
  image: 'busybox',
  tty: false,
  ...(cpu || memory ? { resources: { requests: { ...(cpu ? { cpu } : {}), ...(memory ? { memory } : {}) } } } : {}),
});
const spec = (over: Record<string, unknown> = {}) =>
  ({ containers: [container()], resources: { pids: 1024 }, ...over }) as Pick<SandboxSpec, 'containers' | 'resources'>;

describe('unit: what a sandbox asks of a node', () => {
  it('sums container requests, with limits standing in, else sandbox limits', () => {
    assert.deepEqual(sandboxDemand(spec({ containers: [container('250m', '64Mi'), container('250m')] })), {
      milliCpu: 500,
      memory: 64 * 2 ** 20,
    });
    assert.deepEqual(sandboxDemand(spec({ containers: [{ ...container(), resources: { limits: { cpu: '1' } } }] })), {
      milliCpu: 1000,
      memory: 0,
    });
    assert.deepEqual(sandboxDemand(spec({ resources: { cpu: '2', memory: '1Gi', pids: 10 } })), {
      milliCpu: 2000,
      memory: 2 ** 30,
    });
  });

  for (const [resources, want] of [
    [undefined, 0],
    [{ requests: { cpu: '250m' } }, 250],
    [{ limits: { cpu: '1' } }, 1000],
    [{ requests: { cpu: '100m' }, limits: { cpu: '2' } }, 100],
    [{ requests: { memory: '1Gi' } }, 0],
  ] as const)
    it(`a container with resources ${JSON.stringify(resources)} requests ${want} millicores`, () => {
      assert.equal(containerMilliCpu({ resources }), want);
    });
});
