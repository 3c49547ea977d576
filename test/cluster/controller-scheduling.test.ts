import assert from 'node:assert/strict';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../../lib/kube/client.js';
import type { ConditionInput } from '../../lib/kube/conditions.js';
import { createLogger } from '../../lib/log.js';
import { NodeRegistration } from '../../node-agent/registration/registration.js';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import {
  agentKubeconfig,
  applyCRDs,
  applyManifests,
  cleanUp,
  condition,
  controllerLog,
  getSandbox,
  sandboxManifest,
  startController,
  waitFor,
  type ControllerProcess,
} from './sandpit-processes.js';

/*
 * The controller as a process against a real API server, with nodes
 * registered by the agent's real registration code (SandboxNode + Lease
 * heartbeat, under agent credentials and the admission policy). No agent API
 * answers on these nodes: what is proven here is scheduling, finalizers and
 * the node lifecycle, which need no sandbox runtime.
 */
describe('cluster: controller scheduling, finalizers and node loss', function () {
  this.timeout(240_000);
  const ns = 'sched-test';
  const nodes = ['sched-a', 'sched-b', 'sched-z', 'sched-p', 'sched-c'];
  let cp: ControlPlane;
  let controller: ControllerProcess;
  const registrations = new Map<string, NodeRegistration>();
  const log = createLogger('test');

  async function register(
    node: string,
    labels: Record<string, string>,
    cpu: string,
    conditions?: () => ConditionInput[],
  ): Promise<void> {
    const kc = new KubeConfig();
    kc.loadFromFile(await agentKubeconfig(cp, node));
    const client = await KubeClient.fromKubeConfig(kc);
    const reg = new NodeRegistration(
      client,
      { node, namespace: 'sandpit-system', leaseDurationSeconds: 4, labels, statusIntervalMs: 2_000 },
      () => ({
        capacity: { cpu, memory: '4Gi', sandboxes: 5 },
        allocatable: { cpu, memory: '4Gi', sandboxes: 5 },
        endpoint: 'https://127.0.0.1:9', // nothing listens: the agent API is out of scope here
        agentVersion: 'test',
        kernelVersion: 'test',
        cgroupMode: 'v2',
        hostIP: '127.0.0.1',
      }),
      log,
      conditions,
    );
    await reg.start();
    registrations.set(node, reg);
  }

  const apply = (name: string, spec: Record<string, unknown> = {}) =>
    cp.kubectl(['apply', '-f', '-'], { input: sandboxManifest(ns, name, spec) });

  before(async () => {
    cp = await sharedControlPlane();
    await applyCRDs(cp);
    await applyManifests(cp);
    await cp.kubectl(['create', 'namespace', ns]).catch(() => undefined);
    await register('sched-a', { zone: 'a' }, '1');
    await register('sched-b', { zone: 'b' }, '2');
    controller = await startController(cp, 'sched', [
      '--namespace',
      'sandpit-system',
      '--leader-elect',
      'false',
      '--node-lost-grace',
      '4',
      '--workers',
      '2',
    ]);
  });

  after(async () => {
    for (const r of registrations.values()) r.stop();
    const code = await controller?.stop();
    if (code !== 0 && controller) process.stderr.write((await controllerLog(controller)).slice(-4000));
    await cleanUp(cp, [ns], nodes);
  });

  it('binds a sandbox to the node its nodeSelector picks, with the finalizer added first', async () => {
    await apply('by-zone', { nodeSelector: { zone: 'b' } });
    const s = await waitFor('by-zone bound', async () => {
      const s = await getSandbox(cp, ns, 'by-zone');
      return s?.status?.nodeName ? s : undefined;
    });
    assert.equal(s.status?.nodeName, 'sched-b');
    assert.deepEqual(s.metadata.finalizers, ['sandpit.dev/cleanup']);
    assert.equal(condition(s, 'Scheduled')?.status, 'True');
    assert.equal(s.status?.observedGeneration, s.metadata.generation);
    assert.equal(
      condition(s, 'Ready')?.status,
      'False',
      'Ready is written at once (kstatus), False until the agent reports',
    );
  });

  it('spreads: a sandbox without constraints goes to the emptier node', async () => {
    await apply('spread', {});
    const s = await waitFor('spread bound', async () => (await getSandbox(cp, ns, 'spread'))?.status?.nodeName);
    assert.equal(s, 'sched-a');
  });

  it('says Scheduled=False with a reason when nothing fits', async () => {
    await apply('no-gpu', { nodeSelector: { gpu: 'yes' } });
    await apply('too-big', { containers: [{ name: 'main', image: 'busybox', resources: { requests: { cpu: '3' } } }] });
    await apply('too-big-mem', {
      containers: [{ name: 'main', image: 'busybox', resources: { requests: { memory: '8Gi' } } }],
    });
    await apply('pinned', { nodeName: 'sched-z' });
    const reasonOf = (name: string) =>
      waitFor(`${name} unschedulable`, async () => {
        const c = condition(await getSandbox(cp, ns, name), 'Scheduled');
        return c?.status === 'False' ? c : undefined;
      });
    const gpu = await reasonOf('no-gpu');
    assert.equal(gpu.reason, 'NodeSelectorMismatch');
    assert.match(gpu.message, /didn't match the nodeSelector/);
    assert.equal((await reasonOf('too-big')).reason, 'InsufficientCPU');
    assert.equal((await reasonOf('too-big-mem')).reason, 'InsufficientMemory');
    assert.equal((await reasonOf('pinned')).reason, 'NodeNotFound');
    const events = await cp.kubectl([
      '-n',
      ns,
      'get',
      'events.events.k8s.io',
      '-o',
      'jsonpath={range .items[*]}{.reason}{"\\n"}{end}',
    ]);
    assert.match(events.stdout, /FailedScheduling/);
    assert.match(events.stdout, /Scheduled/);
  });

  it('binds a pinned sandbox once its node registers', async () => {
    await register('sched-z', {}, '1');
    const node = await waitFor(
      'pinned bound',
      async () => (await getSandbox(cp, ns, 'pinned'))?.status?.nodeName,
      30_000,
    );
    assert.equal(node, 'sched-z');
  });

  it('places nothing on a node cordoned with spec.unschedulable, and binds there once it is uncordoned', async () => {
    // Cordoned before its agent registers, so no binding can race the cordon.
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'sandpit.dev/v1alpha1',
        kind: 'SandboxNode',
        metadata: { name: 'sched-c', labels: { zone: 'c' } },
        spec: { unschedulable: true },
      }),
    });
    await register('sched-c', { zone: 'c' }, '1');
    await apply('cordoned', { nodeSelector: { zone: 'c' } });
    const refused = await waitFor('cordoned unschedulable', async () => {
      const c = condition(await getSandbox(cp, ns, 'cordoned'), 'Scheduled');
      return c?.status === 'False' && /cordoned/.test(c.message) ? c : undefined;
    });
    assert.match(refused.message, /1 node\(s\) cordoned \(spec\.unschedulable\)/);
    assert.equal((await getSandbox(cp, ns, 'cordoned'))?.status?.nodeName, undefined);
    await cp.kubectl(['patch', 'sandboxnode', 'sched-c', '--type=merge', '-p', '{"spec":{"unschedulable":false}}']);
    assert.equal(
      await waitFor(
        'cordoned bound once uncordoned',
        async () => (await getSandbox(cp, ns, 'cordoned'))?.status?.nodeName,
        30_000,
      ),
      'sched-c',
    );
    registrations.get('sched-c')!.stop();
    await cp.kubectl([
      '-n',
      ns,
      'patch',
      'sandbox',
      'cordoned',
      '--type=merge',
      '-p',
      '{"metadata":{"finalizers":null}}',
    ]);
    await cp.kubectl(['-n', ns, 'delete', 'sandbox', 'cordoned', '--wait=false']);
  });

  it('deletes an unbound sandbox at once: nothing exists on a node, the finalizer goes', async () => {
    await cp.kubectl(['-n', ns, 'delete', 'sandbox', 'no-gpu', '--wait=false']);
    await waitFor('no-gpu gone', async () => (await getSandbox(cp, ns, 'no-gpu')) === undefined, 30_000);
  });

  it('holds the finalizer of a bound sandbox while its agent cannot confirm the deletion', async () => {
    await cp.kubectl(['-n', ns, 'delete', 'sandbox', 'by-zone', '--wait=false']);
    const s = await waitFor('by-zone terminating', async () => {
      const s = await getSandbox(cp, ns, 'by-zone');
      return s?.metadata.deletionTimestamp ? s : undefined;
    });
    assert.deepEqual(s.metadata.finalizers, ['sandpit.dev/cleanup']);
    const log = await waitFor(
      'a logged delete failure',
      async () => (await controllerLog(controller)).includes('delete on node'),
      30_000,
    );
    assert.ok(log);
    assert.ok(await getSandbox(cp, ns, 'by-zone'), 'still there: the agent never confirmed');
  });

  it('marks a silent node NotReady and its sandboxes Unknown, then Failed with NodeLost; a lost node releases deletions', async () => {
    registrations.get('sched-z')!.stop();
    registrations.get('sched-b')!.stop();
    const unknown = await waitFor('pinned Ready=Unknown', async () => {
      const s = await getSandbox(cp, ns, 'pinned');
      return condition(s, 'Ready')?.status === 'Unknown' || s?.status?.phase === 'Failed' ? s : undefined;
    });
    assert.ok(['Unknown', 'Failed'].includes(unknown.status?.phase ?? ''));
    const lost = await waitFor('pinned NodeLost', async () => {
      const s = await getSandbox(cp, ns, 'pinned');
      return s?.status?.reason === 'NodeLost' ? s : undefined;
    });
    assert.equal(lost.status?.phase, 'Failed');
    assert.equal(condition(lost, 'Ready')?.status, 'False');
    assert.equal(condition(lost, 'Stalled')?.status, 'True');
    const node = JSON.parse((await cp.kubectl(['get', 'sandboxnode', 'sched-z', '-o', 'json'])).stdout) as {
      status: { conditions: { type: string; status: string; reason: string }[] };
    };
    const ready = node.status.conditions.find((c) => c.type === 'Ready');
    assert.equal(ready?.status, 'Unknown');
    assert.equal(ready?.reason, 'NodeLeaseExpired');
    await waitFor(
      'by-zone released after its node was lost',
      async () => (await getSandbox(cp, ns, 'by-zone')) === undefined,
      30_000,
    );
  });

  it('keeps sandboxes off a node that reports MemoryPressure, places them once it clears, and makes it Unknown when the agent falls silent', async () => {
    let pressure: ConditionInput = {
      type: 'MemoryPressure',
      status: 'True',
      reason: 'AgentHasInsufficientMemory',
      message: 'memory.available is 80Mi (threshold 100Mi)',
    };
    await register('sched-p', { zone: 'p' }, '2', () => [pressure]);
    await apply('pressed', { nodeSelector: { zone: 'p' } });
    await apply('pressed-pin', { nodeName: 'sched-p' });
    const scheduled = (name: string) =>
      waitFor(`${name} unschedulable`, async () => {
        const c = condition(await getSandbox(cp, ns, name), 'Scheduled');
        return c?.status === 'False' ? c : undefined;
      });
    // The other nodes fail for other reasons (selector, lost), so the reason is the mix; the message counts each.
    assert.match((await scheduled('pressed')).message, /1 node\(s\) with MemoryPressure/);
    const pin = await scheduled('pressed-pin');
    assert.equal(pin.reason, 'MemoryPressure');
    assert.equal(pin.message, 'Pinned node sched-p: MemoryPressure is True');
    pressure = { ...pressure, status: 'False', reason: 'AgentHasSufficientMemory', message: 'enough' };
    const node = await waitFor(
      'pressed bound once the pressure is gone',
      async () => (await getSandbox(cp, ns, 'pressed'))?.status?.nodeName,
      60_000,
    );
    assert.equal(
      await waitFor(
        'pressed-pin bound',
        async () => (await getSandbox(cp, ns, 'pressed-pin'))?.status?.nodeName,
        30_000,
      ),
      'sched-p',
    );
    // A silent agent's readings are stale: the controller turns them Unknown together with Ready.
    registrations.get('sched-p')!.stop();
    const conditionsOf = async () =>
      (
        JSON.parse((await cp.kubectl(['get', 'sandboxnode', 'sched-p', '-o', 'json'])).stdout) as {
          status: { conditions: { type: string; status: string; reason: string }[] };
        }
      ).status.conditions;
    const silent = await waitFor(
      'sched-p Unknown',
      async () => {
        const list = await conditionsOf();
        return list.find((c) => c.type === 'Ready')?.status === 'Unknown' ? list : undefined;
      },
      30_000,
    );
    const memory = silent.find((c) => c.type === 'MemoryPressure');
    assert.equal(memory?.status, 'Unknown');
    assert.equal(memory?.reason, 'NodeLeaseExpired');
    assert.equal(node, 'sched-p');
  });
});
