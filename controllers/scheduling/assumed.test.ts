import assert from 'node:assert/strict';
import type { Sandbox } from '../../crds/sandbox.js';
import { AssumeCache } from './assumed.js';

const sandbox = (uid: string, status: Sandbox['status'] = {}): Sandbox =>
  ({
    apiVersion: 'sandpit.dev/v1alpha1',
    kind: 'Sandbox',
    metadata: { name: uid, namespace: 'ns', uid },
    spec: { containers: [{ name: 'c', image: 'busybox', resources: { requests: { cpu: '100m', memory: '64Mi' } } }] },
    status,
  }) as Sandbox;

describe('unit: the assume cache', () => {
  const cases: {
    name: string;
    assumed: [string, string][];
    sandboxes: Sandbox[];
    usage: Record<string, number>;
    left: string[];
  }[] = [
    {
      name: 'counts a binding the cache does not show yet on the node we chose',
      assumed: [['a', 'n1']],
      sandboxes: [sandbox('a')],
      usage: { n1: 1 },
      left: ['a'],
    },
    {
      name: 'counts a bound sandbox on its node, the binding winning over an assumption',
      assumed: [['a', 'n1']],
      sandboxes: [sandbox('a', { nodeName: 'n2' }), sandbox('b', { nodeName: 'n2' })],
      usage: { n2: 2 },
      left: ['a'],
    },
    {
      name: 'counts nothing for sandboxes that ended, bound or assumed',
      assumed: [['b', 'n1']],
      sandboxes: [sandbox('a', { nodeName: 'n1', phase: 'Succeeded' }), sandbox('b', { phase: 'Failed' })],
      usage: {},
      left: ['b'],
    },
    {
      name: 'drops the assumptions of sandboxes the cache no longer lists, so their room is free',
      assumed: [
        ['gone', 'n1'],
        ['a', 'n1'],
      ],
      sandboxes: [sandbox('a')],
      usage: { n1: 1 },
      left: ['a'],
    },
    {
      name: 'an unbound sandbox nobody assumed takes no room',
      assumed: [],
      sandboxes: [sandbox('a')],
      usage: {},
      left: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const cache = new AssumeCache();
      for (const [uid, node] of c.assumed) cache.assume(uid, node);
      const usage = cache.usage(c.sandboxes);
      assert.deepEqual(Object.fromEntries([...usage].map(([n, u]) => [n, u.sandboxes])), c.usage);
      assert.deepEqual(
        c.assumed.map(([uid]) => uid).filter((uid) => cache.nodeOf(uid) !== undefined),
        c.left,
      );
    });
  }

  it('adds up what the sandboxes of a node request', () => {
    const cache = new AssumeCache();
    cache.assume('a', 'n1');
    const u = cache.usage([sandbox('a'), sandbox('b', { nodeName: 'n1' })]).get('n1');
    assert.deepEqual(u, { milliCpu: 200, memory: 128 * 2 ** 20, sandboxes: 2 });
  });

  it('forgets an assumption once the binding is seen', () => {
    const cache = new AssumeCache();
    cache.assume('a', 'n1');
    cache.forget('a');
    assert.equal(cache.nodeOf('a'), undefined);
  });
});
