import assert from 'node:assert/strict';
import { E2ECluster } from './harness/cluster.js';
import { getSandbox, waitFor } from '../cluster/sandpit-processes.js';

/*
 * The multi-node e2e tier: a control plane and two controller replicas on the
 * host, three privileged node containers on the harness's own Docker engine,
 * each running the agent (test/e2e/harness/). See the README's e2e section.
 */
describe('e2e: a three-node sandpit cluster on Docker', function () {
  this.timeout(600_000);
  const ns = 'e2e-multi';
  let c: E2ECluster;

  const manifest = (name: string, over: Record<string, unknown> = {}) =>
    JSON.stringify({
      apiVersion: 'sandpit.dev/v1alpha1',
      kind: 'Sandbox',
      metadata: { name, namespace: ns },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'main', image: `dir:${c.rootfs}`, command: ['/bin/sleep', '3600'] }],
        ...over,
      },
    });

  before(async function () {
    this.timeout(900_000);
    c = await E2ECluster.start({ id: (process.pid % 1679616).toString(36).padStart(4, '0'), nodes: 3, controllers: 2 });
    await c.cp.kubectl(['create', 'namespace', ns]);
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && c) process.stderr.write(`${await c.diagnostics()}\n`);
  });

  after(async function () {
    this.timeout(300_000);
    if (!c) return;
    await c.stop();
    assert.deepEqual(c.engine.leftovers(), [], 'the engine left nothing behind');
  });

  it('runs a sandbox on a node container', async () => {
    await c.cp.kubectl(['apply', '-f', '-'], { input: manifest('one') });
    await c.cp.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'sandbox/one', '--timeout=120s']);
    const s = (await getSandbox(c.cp, ns, 'one'))!;
    const node = s.status!.nodeName!;
    assert.ok(c.nodes.has(node), `bound to one of our nodes, got ${node}`);
    const ip = (s.status as { sandboxIP?: string }).sandboxIP;
    assert.ok(ip?.startsWith(`10.88.${c.node(node).index}.`), `sandbox IP ${ip} is in ${node}'s subnet`);
    const ps = await c.exec(node, ['ps', '-eo', 'args']);
    assert.match(ps, /\/bin\/sleep 3600/);
    await c.cp.kubectl(['-n', ns, 'delete', 'sandbox', 'one', '--timeout=60s']);
    await waitFor('sleep gone', async () => !/\/bin\/sleep 3600/.test(await c.exec(node, ['ps', '-eo', 'args'])), 30_000);
  });
});
