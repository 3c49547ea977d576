import assert from 'node:assert/strict';
import type { SandboxObservation } from './agent-api.js';
import { desiredStatusPatch, givenUp } from './status-patch.js';

const t0 = '2026-01-01T00:00:00Z';
const obs = (over: Partial<SandboxObservation['status']> = {}): SandboxObservation => ({
  ref: { id: 'abc', namespace: 'ns', name: 'n', uid: 'u' },
  generation: 2,
  status: {
    phase: 'Running',
    sandboxIP: '10.88.0.2',
    conditions: [{ type: 'Ready', status: 'True', reason: 'Running', message: '', lastTransitionTime: t0 }],
    ...over,
  },
});

describe('unit: agent status patch', () => {
  it('does not write again a status the API server returned with its keys in another order', () => {
    const o = obs({
      publishedPorts: [{ name: 'http', containerPort: 80, hostPort: 8080, protocol: 'TCP', hostIP: '0.0.0.0' }],
    });
    const written = desiredStatusPatch({ status: {} }, o, 'a')!;
    const sortKeys = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(sortKeys)
        : v && typeof v === 'object'
          ? Object.fromEntries(
              Object.entries(v)
                .filter(([, x]) => x !== null)
                .sort(([a], [b]) => a.localeCompare(b))
                .reverse()
                .map(([k, x]) => [k, sortKeys(x)]),
            )
          : v;
    assert.equal(desiredStatusPatch({ status: sortKeys(written) as never }, o, 'a'), undefined);
    assert.ok(
      desiredStatusPatch({ status: sortKeys(written) as never }, obs({ publishedPorts: [] }), 'a'),
      'a real change is still written',
    );
  });

  it('writes the observation with nodeName and observedGeneration, keeping the Scheduled condition', () => {
    const cur = {
      status: {
        nodeName: 'a',
        conditions: [
          { type: 'Scheduled', status: 'True' as const, reason: 'Scheduled', message: '', lastTransitionTime: t0 },
          { type: 'Reconciling', status: 'True' as const, reason: 'Creating', message: '', lastTransitionTime: t0 },
        ],
      },
    };
    const patch = desiredStatusPatch(cur, obs(), 'a') as {
      conditions: { type: string }[];
      observedGeneration: number;
      nodeName: string;
      sandboxIP: string;
      message: null;
    };
    assert.ok(patch);
    assert.equal(patch.observedGeneration, 2);
    assert.equal(patch.nodeName, 'a');
    assert.equal(patch.sandboxIP, '10.88.0.2');
    assert.equal(patch.message, null, 'fields the runtime no longer reports are cleared');
    assert.deepEqual(
      patch.conditions.map((c) => c.type),
      ['Scheduled', 'Ready'],
      'Reconciling is dropped once the agent does not report it',
    );
  });

  it('writes nothing when the status already says it', () => {
    const first = desiredStatusPatch({}, obs(), 'a') as Record<string, unknown>;
    const status = Object.fromEntries(Object.entries(first).filter(([, v]) => v !== null));
    assert.equal(desiredStatusPatch({ status } as never, obs(), 'a'), undefined);
  });

  it('leaves a change of usage alone to the periodic re-report when told to, and carries it with any other change', () => {
    const first = desiredStatusPatch({}, obs({ usage: { cpu: '1m', memory: '4096', pids: 2 } }), 'a') as Record<
      string,
      unknown
    >;
    const status = Object.fromEntries(Object.entries(first).filter(([, v]) => v !== null)) as never;
    const busier = obs({ usage: { cpu: '7m', memory: '8192', pids: 3 } });
    assert.equal(desiredStatusPatch({ status }, busier, 'a', { usage: false }), undefined);
    assert.deepEqual(
      desiredStatusPatch({ status }, busier, 'a')?.usage,
      { cpu: '7m', memory: '8192', pids: 3 },
      'the periodic re-report writes it',
    );
    const moved = obs({ usage: { cpu: '7m', memory: '8192', pids: 3 }, sandboxIP: '10.88.0.3' });
    assert.deepEqual(desiredStatusPatch({ status }, moved, 'a', { usage: false })?.usage, {
      cpu: '7m',
      memory: '8192',
      pids: 3,
    });
  });

  it('knows a NodeLost sandbox is given up', () => {
    assert.equal(givenUp({ phase: 'Failed', reason: 'NodeLost' }), true);
    assert.equal(givenUp({ phase: 'Failed', reason: 'Error' }), false);
  });
});
