import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sandboxIdFor } from '../../node-agent/contracts.js';
import { buildBusyboxRootfs } from '../fixtures/busybox-rootfs.js';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import {
  agentKubeconfig,
  applyCRDs,
  applyManifests,
  cleanUp,
  condition,
  controllerLog,
  getSandbox,
  probe,
  sandboxManifest,
  sleep,
  startAgentProcess,
  startController,
  waitFor,
  type AgentProcess,
  type ControllerProcess,
} from './sandpit-processes.js';

/*
 * The API server goes away for a minute under a running controller and an
 * agent with a running sandbox, and comes back. The informers must restart
 * on their own (client-node's would stop for good on the first error), the
 * controller must converge on what changed while it was blind without a
 * restart of its own, and nothing may be lost: the node-lost grace (20 s)
 * is far shorter than the outage, yet the running sandbox must not be
 * declared lost for a silence the controller could not have heard.
 */
describe('cluster: controller and agent survive an API server outage', function () {
  this.timeout(300_000);
  const ns = 'outage-test';
  const node = 'outage-a';
  const cgroupParent = `sandpit-outage-${process.pid}`;
  const rootfs = buildBusyboxRootfs(join(tmpdir(), 'sandpit-test-rootfs'));
  let cp: ControlPlane;
  let controller: ControllerProcess;
  let agent: AgentProcess | undefined;
  let stateRoot: string;
  let agentLog: string;
  const unschedulable = { nodeSelector: { 'sandpit.test/none': 'x' } };
  const running = JSON.stringify({
    apiVersion: 'sandpit.dev/v1alpha1',
    kind: 'Sandbox',
    metadata: { name: 'kept', namespace: ns },
    spec: {
      nodeSelector: { 'sandpit.test/outage': 'yes' },
      network: { mode: 'None' },
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'main', image: `dir:${rootfs}`, command: ['/bin/sleep', '3600'] }],
    },
  });
  const pid1Of = (uid: string) =>
    (JSON.parse(readFileSync(join(stateRoot, sandboxIdFor(uid), 'sandbox.json'), 'utf8')) as { pid1?: { pid: number } })
      .pid1?.pid;

  before(async () => {
    cp = await sharedControlPlane();
    await applyCRDs(cp);
    await applyManifests(cp);
    await cp.kubectl(['create', 'namespace', ns]).catch(() => undefined);
    controller = await startController(cp, 'outage', [
      '--namespace',
      'sandpit-system',
      '--leader-elect',
      'false',
      '--node-lost-grace',
      '20',
    ]);
    stateRoot = await mkdtemp(join(tmpdir(), 'sandpit-outage-state-'));
    agentLog = join(cp.dir, 'agent-outage.log');
    const kc = await agentKubeconfig(cp, node);
    agent = await startAgentProcess({
      kubeconfig: kc,
      node,
      leaseDuration: 6,
      labels: 'sandpit.test/outage=yes',
      allowDirImages: rootfs,
      stateRoot,
      cgroupParent,
      logPath: agentLog,
    });
    await cp.kubectl(['apply', '-f', '-'], { input: sandboxManifest(ns, 'before', unschedulable) });
    await cp.kubectl(['apply', '-f', '-'], { input: running });
    await waitFor(
      'before reconciled',
      async () => condition(await getSandbox(cp, ns, 'before'), 'Scheduled')?.status === 'False',
    );
    await cp.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'sandbox/kept', '--timeout=120s']);
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      process.stderr.write(`agent log tail:\n${(await readFile(agentLog, 'utf8').catch(() => '')).slice(-4000)}\n`);
      process.stderr.write(`controller log tail:\n${(await controllerLog(controller)).slice(-6000)}\n`);
    }
  });

  after(async () => {
    await cp.startApiServer();
    await cp.kubectlResult(['-n', ns, 'delete', 'sandbox', 'kept', '--wait=true', '--timeout=60s']);
    await agent?.stop();
    await controller?.stop();
    await cleanUp(cp, [ns], [node]);
    await rm(stateRoot, { recursive: true, force: true });
    await rm(`${stateRoot}-images`, { recursive: true, force: true });
    for (const root of readdirSync('/sys/fs/cgroup')) {
      const dir = join('/sys/fs/cgroup', root, cgroupParent);
      for (let i = 0; i < 50 && existsSync(dir); i++) {
        try {
          rmdirSync(dir);
        } catch {
          await sleep(200); // the last sandbox processes may still be exiting
        }
      }
    }
  });

  it('keeps running through 60 s without an API server, reports not ready, then converges with nothing lost', async () => {
    const kept = (await getSandbox(cp, ns, 'kept'))!;
    const pid = pid1Of(kept.metadata.uid);
    assert.ok(pid && existsSync(`/proc/${pid}`));

    await cp.stopApiServer();
    // Deliberate: the outage has to last (past lease duration, node-lost grace and client retries) for a crash or a wrong verdict to show.
    await sleep(60_000);
    assert.equal(controller.child.exitCode, null, 'the controller does not crash without an API server');
    assert.equal(agent!.child.exitCode, null, 'neither does the agent');
    assert.equal(await probe(controller.healthPort, '/healthz'), 200, 'liveness holds: restarting would not help');
    assert.ok(existsSync(`/proc/${pid}`), 'the sandbox keeps running on its node');

    await cp.startApiServer();
    await cp.kubectl(['apply', '-f', '-'], { input: sandboxManifest(ns, 'after', unschedulable) });
    await cp.kubectl(['-n', ns, 'delete', 'sandbox', 'before', '--wait=false']);
    const s = await waitFor(
      'after reconciled',
      async () => {
        const s = await getSandbox(cp, ns, 'after');
        return condition(s, 'Scheduled')?.status === 'False' ? s : undefined;
      },
      90_000,
    );
    assert.deepEqual(s.metadata.finalizers, ['sandpit.dev/cleanup']);
    await waitFor('before finalized and gone', async () => (await getSandbox(cp, ns, 'before')) === undefined, 60_000);
    await waitFor('ready again', async () => (await probe(controller.healthPort, '/readyz')) === 200, 30_000);
    await waitFor(
      'node Ready again',
      async () =>
        (
          await cp.kubectl([
            'get',
            'sandboxnode',
            node,
            '-o',
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
          ])
        ).stdout === 'True',
      30_000,
    );

    // Past lease duration + grace after the return: a wrong verdict would have landed by now.
    await sleep(30_000);
    const after = (await getSandbox(cp, ns, 'kept'))!;
    assert.equal(after.metadata.uid, kept.metadata.uid);
    assert.equal(after.status?.phase, 'Running', `the sandbox is not lost: ${JSON.stringify(after.status)}`);
    assert.notEqual(after.status?.reason, 'NodeLost');
    assert.equal(condition(after, 'Ready')?.status, 'True');
    assert.equal(pid1Of(after.metadata.uid), pid, 'the same sandbox, not a re-creation');
    assert.ok(existsSync(`/proc/${pid}`));
    const log = await controllerLog(controller);
    assert.match(log, /Informer lost its stream; restarting/);
    // Whichever informer relists first after the outage, the node was never judged lost for a silence nobody could hear.
    assert.doesNotMatch(log, new RegExp(`"node":"${node}","from":"\\w+","to":"Lost"`));
  });
});
