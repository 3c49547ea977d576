import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBusyboxRootfs } from '../fixtures/busybox-rootfs.js';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { argoHealth, CHART, kstatusBinary, run } from './helm-support.js';
import {
  agentKubeconfig,
  applyCRDs,
  applyManifests,
  cleanUp,
  condition,
  controllerLog,
  getSandbox,
  rmdirDeep,
  startAgentProcess,
  startController,
  waitFor,
  type AgentProcess,
  type ControllerProcess,
  type SandboxJson,
} from './sandpit-processes.js';

/*
 * GitOps health from statuses the controller and agent really wrote: each
 * Sandbox is driven to a state by a real controller and a real agent running
 * real sandboxes, then the stored object is given to kstatus itself
 * (sigs.k8s.io/cli-utils, what Flux and kpt use) and to the Argo CD health
 * check (lua5.4). kstatus must say what its Pod rule says of the equivalent
 * Pod, except Failed, which stays Failed for a Sandbox (a failed Pod is Current).
 */
describe('cluster: kstatus and Argo CD health of real Sandbox statuses (root)', function () {
  this.timeout(300_000);
  const ns = 'gitops-health';
  const node = 'gitops-a';
  const rootfs = buildBusyboxRootfs(join(tmpdir(), 'sandpit-test-rootfs'));
  const cgroupParent = `sandpit-gitops-${process.pid}`;
  let cp: ControlPlane;
  let controller: ControllerProcess;
  let agent: AgentProcess | undefined;
  let stateRoot: string;
  let agentLog: string;
  let script: string;

  const apply = (
    name: string,
    spec: Record<string, unknown>,
    containers: Record<string, unknown>[] = [{ name: 'main', image: `dir:${rootfs}`, command: ['/bin/sleep', '3600'] }],
  ) =>
    cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'sandpit.dev/v1alpha1',
        kind: 'Sandbox',
        metadata: { name, namespace: ns },
        spec: {
          nodeSelector: { 'sandpit.test/gitops': 'yes' },
          network: { mode: 'None' },
          terminationGracePeriodSeconds: 1,
          containers,
          ...spec,
        },
      }),
    });
  const once = (name: string, ok: (s: SandboxJson) => boolean, timeoutMs = 90_000) =>
    waitFor(
      `${name} reaches its state`,
      async () => {
        const s = await getSandbox(cp, ns, name);
        return s && ok(s) ? s : undefined;
      },
      timeoutMs,
    );
  const waitingReasons = (s: SandboxJson) =>
    (
      (s.status as { containerStatuses?: { state?: { waiting?: { reason?: string } } }[] } | undefined)
        ?.containerStatuses ?? []
    ).map((c) => c.state?.waiting?.reason);
  const sh = (script: string) => [{ name: 'main', image: `dir:${rootfs}`, command: ['/bin/sh', '-c', script] }];

  before(async () => {
    cp = await sharedControlPlane();
    await applyCRDs(cp);
    await applyManifests(cp);
    await cp.kubectl(['create', 'namespace', ns]).catch(() => undefined);
    script = await readFile(join(CHART, 'argocd', 'health.lua'), 'utf8');
    stateRoot = await mkdtemp(join(tmpdir(), 'sandpit-gitops-state-'));
    agentLog = join(cp.dir, 'agent-gitops.log');
    const agentKc = await agentKubeconfig(cp, node);
    controller = await startController(cp, 'gitops', [
      '--namespace',
      'sandpit-system',
      '--leader-elect',
      'false',
      '--resync-period',
      '5',
    ]);
    agent = await startAgentProcess({
      kubeconfig: agentKc,
      node,
      labels: 'sandpit.test/gitops=yes',
      allowDirImages: rootfs,
      stateRoot,
      cgroupParent,
      logPath: agentLog,
    });
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      process.stderr.write(`agent log tail:\n${(await readFile(agentLog, 'utf8').catch(() => '')).slice(-4000)}\n`);
      process.stderr.write(`controller log tail:\n${(await controllerLog(controller)).slice(-3000)}\n`);
    }
  });

  after(async () => {
    await cp.kubectlResult(['-n', ns, 'delete', 'sandboxes', '--all', '--wait=true', '--timeout=60s']);
    await agent?.stop();
    await controller?.stop();
    await cleanUp(cp, [ns], [node]);
    await rm(stateRoot, { recursive: true, force: true });
    await rm(`${stateRoot}-images`, { recursive: true, force: true });
    for (const root of readdirSync('/sys/fs/cgroup')) {
      const dir = join('/sys/fs/cgroup', root, cgroupParent);
      if (existsSync(dir)) await rmdirDeep(dir);
    }
  });

  it('gives each state the verdict kstatus gives the equivalent Pod, and the Argo CD health that agrees', async () => {
    // All applied at once; each is read when it has reached its state.
    await apply('unschedulable', { nodeSelector: { 'sandpit.test/gitops': 'nowhere' } });
    const early = await once('unschedulable', (s) => condition(s, 'Scheduled')?.status === 'False', 30_000);
    await apply('running', {});
    await apply('succeeded', { restartPolicy: 'Never' }, sh('true'));
    await apply('crashloop', { restartPolicy: 'Always' }, sh('exit 1'));
    await apply('failed', { restartPolicy: 'Never' }, sh('exit 3'));
    await apply('paused', { paused: true });
    // Nothing listens on port 1: every pull fails, and a retry might succeed once a registry is there.
    await apply('pulling', {}, [
      { name: 'main', image: '127.0.0.1:1/sandpit/nothing:v1', command: ['/bin/sleep', '3600'] },
    ]);
    await once('pulling', (s) => Boolean(s.status?.nodeName));
    await once('pulling', (s) => waitingReasons(s).some((r) => r === 'ErrImagePull' || r === 'ImagePullBackOff'));

    const states: [string, SandboxJson, string, string][] = [
      // [what, object, kstatus, Argo CD]
      ['unschedulable, within the window (Pod: PodNotScheduled)', early, 'InProgress', 'Progressing'],
      [
        'Running and Ready (Pod: Ready)',
        await once('running', (s) => condition(s, 'Ready')?.status === 'True'),
        'Current',
        'Healthy',
      ],
      [
        'Succeeded (Pod: completed)',
        await once('succeeded', (s) => s.status?.phase === 'Succeeded'),
        'Current',
        'Healthy',
      ],
      [
        'CrashLoopBackOff (Pod: ContainerCrashLooping)',
        await once('crashloop', (s) => waitingReasons(s).includes('CrashLoopBackOff')),
        'Failed',
        'Degraded',
      ],
      [
        'Failed (Pod: Current; a Sandbox stays Failed)',
        await once('failed', (s) => s.status?.phase === 'Failed'),
        'Failed',
        'Degraded',
      ],
      [
        'Paused (kstatus has no suspended)',
        await once('paused', (s) => s.status?.phase === 'Paused'),
        'Current',
        'Suspended',
      ],
      [
        'Pending on an image (Pod: Pending)',
        await once('pulling', (s) => s.status?.phase === 'Pending'),
        'InProgress',
        'Progressing',
      ],
      [
        'unschedulable past the window (Pod: Unschedulable)',
        await once('unschedulable', (s) => condition(s, 'Stalled')?.status === 'True', 40_000),
        'Failed',
        'Degraded',
      ],
    ];
    assert.equal(condition(early, 'Reconciling')?.status, 'True', 'unschedulable starts Reconciling');

    const r = await run(await kstatusBinary(), [], { input: JSON.stringify(states.map(([, o]) => o)) });
    assert.equal(r.code, 0, r.stderr);
    const verdicts = r.stdout
      .trim()
      .split('\n')
      .map((line) => line.split('\t')[0]);
    const argo = await Promise.all(states.map(([, o]) => argoHealth(script, o).then((h) => h.status)));
    assert.deepEqual(
      states.map(([what], i) => [what, verdicts[i], argo[i]]),
      states.map(([what, , k, a]) => [what, k, a]),
      JSON.stringify(
        states.map(([, o]) => o.status),
        null,
        1,
      ),
    );
  });
});
