import assert from 'node:assert/strict';
import { KubeConfig } from '@kubernetes/client-node';
import { ApiError, KubeClient } from '../../lib/kube/client.js';
import { paths } from '../../lib/kube/resources.js';
import { createLogger } from '../../lib/log.js';
import type { SandboxObservation } from '../../node-agent/contracts.js';
import { NodeRegistration } from '../../node-agent/registration/registration.js';
import { writeSandboxStatus } from '../../node-agent/status/reporter.js';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import {
  agentKubeconfig,
  applyCRDs,
  applyManifests,
  cleanUp,
  getSandbox,
  sandboxManifest,
} from './sandpit-processes.js';

/*
 * The agent's credentials against the real API server with the shipped RBAC
 * and ValidatingAdmissionPolicy (controllers/manifests/): an agent writes the
 * status of sandboxes bound to its own node, its own SandboxNode and its own
 * Lease, and nothing of any other node.
 */
describe('cluster: agent RBAC and node-restriction admission policy', function () {
  this.timeout(180_000);
  const ns = 'vap-test';
  let cp: ControlPlane;
  let agentA: KubeClient;
  let unbound: KubeClient;
  const log = createLogger('test');

  const clientFor = async (path: string) => {
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    return KubeClient.fromKubeConfig(kc);
  };
  const bind = async (name: string, node: string) => {
    await cp.kubectl(['apply', '-f', '-'], { input: sandboxManifest(ns, name) });
    await cp.kubectl([
      '-n',
      ns,
      'patch',
      'sandbox',
      name,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { nodeName: node, phase: 'Pending' } }),
    ]);
    return (await getSandbox(cp, ns, name))!;
  };
  const observation = (name: string, uid: string): SandboxObservation => ({
    ref: { id: 'abcdefabcdef', namespace: ns, name, uid },
    generation: 1,
    status: {
      phase: 'Running',
      sandboxIP: '10.88.0.7',
      publishedPorts: [{ name: 'http', containerPort: 80, hostPort: 8080, protocol: 'TCP', hostIP: '0.0.0.0' }],
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'Running',
          message: 'all containers run',
          lastTransitionTime: new Date().toISOString(),
        },
      ],
    },
  });
  const forbidden = async (p: Promise<unknown>, pattern: RegExp) => {
    await assert.rejects(p, (e: unknown) => {
      const err = e instanceof ApiError ? e : ((e as { cause?: unknown }).cause as ApiError);
      assert.ok(err instanceof ApiError, String(e));
      assert.equal(err.status, 403, err.message);
      assert.match(err.message, pattern);
      return true;
    });
  };

  before(async () => {
    cp = await sharedControlPlane();
    await applyCRDs(cp);
    await applyManifests(cp);
    await cp.kubectl(['create', 'namespace', ns]).catch(() => undefined);
    agentA = await clientFor(await agentKubeconfig(cp, 'vap-a'));
    await agentKubeconfig(cp, 'vap-b');
    unbound = await clientFor(await cp.serviceAccountKubeconfig('sandpit-system', 'sandpit-agent'));
  });

  after(async () => {
    await cleanUp(cp, [ns], ['vap-a', 'vap-b']);
  });

  it('lets an agent write the status of a sandbox bound to its node', async () => {
    const s = await bind('on-a', 'vap-a');
    assert.equal(await writeSandboxStatus(agentA, 'vap-a', observation('on-a', s.metadata.uid)), true);
    const after = await getSandbox(cp, ns, 'on-a');
    assert.equal(after?.status?.phase, 'Running');
    assert.equal(after?.status?.observedGeneration, 1);
    assert.deepEqual(
      (after?.status as { publishedPorts?: unknown } | undefined)?.publishedPorts,
      [{ name: 'http', containerPort: 80, hostPort: 8080, protocol: 'TCP', hostIP: '0.0.0.0' }],
      'the CRD keeps status.publishedPorts as written',
    );
    assert.equal(
      await writeSandboxStatus(agentA, 'vap-a', observation('on-a', s.metadata.uid)),
      false,
      'an unchanged status is not written again',
    );
  });

  it("refuses an agent writing another node's sandbox status", async () => {
    const s = await bind('on-b', 'vap-b');
    await forbidden(
      agentA.patch(paths.sandboxStatus(ns, 'on-b'), { status: { phase: 'Failed', message: 'forged' } }),
      /may only write sandboxes bound to its own node/,
    );
    assert.equal(
      await writeSandboxStatus(agentA, 'vap-a', observation('on-b', s.metadata.uid)),
      false,
      'the status writer does not even try',
    );
    assert.equal((await getSandbox(cp, ns, 'on-b'))?.status?.phase, 'Pending');
  });

  it('refuses an agent claiming an unbound sandbox or moving one to itself', async () => {
    await cp.kubectl(['apply', '-f', '-'], { input: sandboxManifest(ns, 'unbound') });
    await forbidden(
      agentA.patch(paths.sandboxStatus(ns, 'unbound'), { status: { nodeName: 'vap-a' } }),
      /may only write sandboxes bound to its own node/,
    );
    // Moving a bound sandbox is refused already by the CRD's CEL rule (422), before admission runs.
    await assert.rejects(
      agentA.patch(paths.sandboxStatus(ns, 'on-b'), { status: { nodeName: 'vap-a' } }),
      (e: ApiError) => e.status === 422 && /cannot change once the sandbox is bound/.test(e.message),
    );
    assert.equal((await getSandbox(cp, ns, 'on-b'))?.status?.nodeName, 'vap-b');
  });

  it('refuses spec writes to sandboxes outright (RBAC)', async () => {
    await forbidden(agentA.patch(paths.sandbox(ns, 'on-a'), { spec: { paused: true } }), /forbidden/i);
  });

  it('lets an agent register its own SandboxNode and Lease, and no other', async () => {
    const reg = new NodeRegistration(
      agentA,
      { node: 'vap-a', namespace: 'sandpit-system', leaseDurationSeconds: 40, labels: {}, statusIntervalMs: 60_000 },
      () => ({ endpoint: 'https://127.0.0.1:10260', agentVersion: 'test', hostIP: '127.0.0.1' }),
      log,
    );
    await reg.renewLease();
    await reg.syncNode();
    const node = JSON.parse((await cp.kubectl(['get', 'sandboxnode', 'vap-a', '-o', 'json'])).stdout) as {
      status: { endpoint: string; conditions: { type: string; status: string }[] };
    };
    assert.equal(node.status.endpoint, 'https://127.0.0.1:10260');
    assert.equal(node.status.conditions.find((c) => c.type === 'Ready')?.status, 'True');

    const impostor = new NodeRegistration(
      agentA,
      { node: 'vap-b', namespace: 'sandpit-system', leaseDurationSeconds: 40, labels: {}, statusIntervalMs: 60_000 },
      () => ({}),
      log,
    );
    await forbidden(impostor.syncNode(), /may only write SandboxNode vap-a/);
    await forbidden(impostor.renewLease(), /may only renew its own node Lease/);
  });

  it('refuses agent credentials that are not bound to a pod on a node', async () => {
    const s = (await getSandbox(cp, ns, 'on-a'))!;
    await forbidden(
      unbound.patch(paths.sandboxStatus(ns, 'on-a'), {
        status: { message: 'x' },
        metadata: { resourceVersion: s.metadata.resourceVersion },
      }),
      /bound to a pod on a node/,
    );
  });
});
