import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBusyboxRootfs } from '../fixtures/busybox-rootfs.js';
import { freePort, sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { buildFixtures, push } from '../harness/images/fixtures.js';
import { startRegistry, type TestRegistry } from '../harness/images/registry.js';
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
 * Every way a create fails on the node, seen where a user looks: the
 * container's waiting reason (kubelet's words), the sandbox reason and
 * message with the agent's hint, Ready/ImagesReady, Reconciling for what a
 * retry may fix and Stalled for what it cannot, a Warning Event, and
 * `kubectl describe`. A real controller and agent (as root), a real registry.
 */
describe('cluster: create failures reach the Sandbox (root)', function () {
  this.timeout(300_000);
  const ns = 'failures-test';
  const node = 'fail-a';
  let cp: ControlPlane;
  let controller: ControllerProcess;
  let agent: AgentProcess | undefined;
  let registry: TestRegistry;
  /** A registry host that is down until the test starts a forwarder on its port. */
  let lateHost: string;
  let late: Server | undefined;
  let stateRoot: string;
  let agentLog: string;
  const rootfs = buildBusyboxRootfs(join(tmpdir(), 'sandpit-test-rootfs'));
  const cgroupParent = `sandpit-fail-${process.pid}`;

  let agentArgs: { agentKc: string; apiPort: number };
  async function startAgent(): Promise<void> {
    // A long lease: the test that stops the agent applies a Sandbox while the node still counts as Ready.
    agent = await startAgentProcess({
      kubeconfig: agentArgs.agentKc,
      node,
      apiPort: agentArgs.apiPort,
      leaseDuration: 40,
      labels: 'sandpit.test/failures=yes',
      allowDirImages: rootfs,
      stateRoot,
      cgroupParent,
      logPath: agentLog,
      env: { SANDPIT_INSECURE_REGISTRIES: `${registry.host},${lateHost}` },
    });
  }

  const apply = (name: string, containers: Record<string, unknown>[]) =>
    cp.kubectlResult(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'sandpit.dev/v1alpha1',
        kind: 'Sandbox',
        metadata: { name, namespace: ns },
        spec: {
          nodeSelector: { 'sandpit.test/failures': 'yes' },
          network: { mode: 'None' },
          terminationGracePeriodSeconds: 1,
          containers,
        },
      }),
    });
  const waitingOf = (s: SandboxJson | undefined, container: string) =>
    (
      (
        s?.status as
          | { containerStatuses?: { name: string; state?: { waiting?: { reason?: string; message?: string } } }[] }
          | undefined
      )?.containerStatuses ?? []
    ).find((c) => c.name === container)?.state?.waiting;
  const waitForReason = (name: string, container: string, reason: string, timeoutMs = 60_000) =>
    waitFor(
      `${name}/${container} waiting ${reason}`,
      async () => {
        const s = await getSandbox(cp, ns, name);
        return waitingOf(s, container)?.reason === reason ? s : undefined;
      },
      timeoutMs,
    );
  const events = async (name: string) => {
    const list = JSON.parse(
      (
        await cp.kubectl([
          '-n',
          ns,
          'get',
          'events.events.k8s.io',
          '--field-selector',
          `regarding.name=${name}`,
          '-o',
          'json',
        ])
      ).stdout,
    ) as { items: { type: string; reason: string; note: string }[] };
    return list.items.map((e) => `${e.type}/${e.reason}: ${e.note}`);
  };
  const describe = async (name: string) => (await cp.kubectl(['-n', ns, 'describe', 'sandbox', name])).stdout;

  before(async function () {
    this.timeout(600_000);
    cp = await sharedControlPlane();
    await applyCRDs(cp);
    await applyManifests(cp);
    await cp.kubectl(['create', 'namespace', ns]).catch(() => undefined);
    registry = await startRegistry({ kind: 'none' });
    await push(buildFixtures(), registry.host, [{ tag: 'busybox' }]);
    lateHost = `127.0.0.1:${await freePort()}`;
    stateRoot = await mkdtemp(join(tmpdir(), 'sandpit-fail-state-'));
    agentLog = join(cp.dir, 'agent-failures.log');
    const apiPort = await freePort();
    const agentKc = await agentKubeconfig(cp, node);
    controller = await startController(cp, 'failures', [
      '--namespace',
      'sandpit-system',
      '--leader-elect',
      'false',
      '--resync-period',
      '5',
      '--node-lost-grace',
      '120',
    ]);
    agentArgs = { agentKc, apiPort };
    await startAgent();
    await waitFor(
      'SandboxNode ready',
      async () => {
        const r = await cp.kubectlResult([
          'get',
          'sandboxnode',
          node,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ]);
        return r.stdout === 'True' || undefined;
      },
      120_000,
    );
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      process.stderr.write(`agent log tail:\n${(await readFile(agentLog, 'utf8').catch(() => '')).slice(-5000)}\n`);
      process.stderr.write(`controller log tail:\n${(await controllerLog(controller)).slice(-3000)}\n`);
    }
  });

  after(async () => {
    await cp.kubectlResult(['-n', ns, 'delete', 'sandboxes', '--all', '--wait=true', '--timeout=60s']);
    await agent?.stop();
    await controller?.stop();
    await cleanUp(cp, [ns], [node]);
    await new Promise((r) => (late ? late.close(r) : r(undefined)));
    await registry?.stop();
    await rm(stateRoot, { recursive: true, force: true });
    await rm(`${stateRoot}-images`, { recursive: true, force: true });
    for (const root of readdirSync('/sys/fs/cgroup')) {
      const dir = join('/sys/fs/cgroup', root, cgroupParent);
      if (existsSync(dir)) await rmdirDeep(dir);
    }
  });

  it("a missing image: ErrImagePull, then ImagePullBackOff with the registry's answer, Reconciling, a Warning Event, and kubectl describe says so", async () => {
    const image = `${registry.host}/sandpit/nosuch:1`;
    assert.equal(
      (
        await apply('missing', [
          { name: 'side', image: `dir:${rootfs}`, command: ['/bin/sleep', '3600'] },
          { name: 'main', image, command: ['/bin/true'] },
        ])
      ).code,
      0,
    );
    const s = await waitForReason('missing', 'main', 'ImagePullBackOff');
    assert.match(waitingOf(s, 'main')?.message ?? '', /Back-off pulling image ".*nosuch:1".*not found/);
    assert.equal(waitingOf(s, 'side')?.reason, 'ContainerCreating');
    assert.equal(s.status?.phase, 'Pending');
    assert.equal(condition(s, 'ImagesReady')?.status, 'False');
    assert.equal(condition(s, 'Ready')?.reason, 'ImagePullBackOff');
    assert.equal(condition(s, 'Reconciling')?.status, 'True', 'a retry may fix it (the tag may be pushed)');
    assert.equal(condition(s, 'Stalled'), undefined);
    const told = await waitFor(
      'the Warning Events',
      async () => {
        const e = await events('missing');
        return e.some((x) => x.startsWith('Warning/Failed: ErrImagePull:')) &&
          e.some((x) => x.startsWith('Warning/Failed: ImagePullBackOff:'))
          ? e
          : undefined;
      },
      15_000,
    );
    assert.ok(
      told.some((x) => /nosuch:1 not found/.test(x)),
      told.join('; '),
    );
    const d = await describe('missing');
    assert.match(d, /ImagePullBackOff/);
    assert.match(d, /check the image name and tag/, 'the hint');
    assert.match(d, /Warning\s+Failed/);
  });

  it('an invalid image name (upper case in the path; Kubernetes does not check it at apply either): InvalidImageName, Stalled', async () => {
    assert.equal(
      (await apply('badname', [{ name: 'main', image: 'localhost:5000/Sandpit/BusyBox', command: ['/bin/true'] }]))
        .code,
      0,
    );
    const s = await waitForReason('badname', 'main', 'InvalidImageName');
    assert.match(waitingOf(s, 'main')?.message ?? '', /Sandpit\/BusyBox/);
    assert.equal(condition(s, 'Stalled')?.reason, 'InvalidImageName');
    assert.equal(condition(s, 'Reconciling'), undefined);
    assert.match(await describe('badname'), /InvalidImageName/);
  });

  it('a registry that is down and comes back: ErrImagePull/ImagePullBackOff, then Running without anyone touching the Sandbox', async () => {
    assert.equal(
      (
        await apply('comeback', [
          { name: 'main', image: `${lateHost}/busybox:latest`, command: ['/bin/busybox', 'sleep', '3600'] },
        ])
      ).code,
      0,
    );
    const s = await waitForReason('comeback', 'main', 'ImagePullBackOff');
    assert.equal(condition(s, 'Reconciling')?.status, 'True');
    const [host, port] = registry.host.split(':');
    late = createServer((c) =>
      c
        .pipe(connect(Number(port), host!))
        .pipe(c)
        .on('error', () => c.destroy()),
    );
    await new Promise<void>((r) => late!.listen(Number(lateHost.split(':')[1]), '127.0.0.1', r));
    await cp.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'sandbox/comeback', '--timeout=120s']);
    const up = (await getSandbox(cp, ns, 'comeback'))!;
    assert.equal(up.status?.phase, 'Running');
    assert.equal(condition(up, 'Reconciling'), undefined, 'no longer reconciling');
  });

  it('a container configuration that cannot work (runAsNonRoot, a root image user): CreateContainerConfigError with the hint, Stalled', async () => {
    assert.equal(
      (
        await apply('nonroot', [
          {
            name: 'main',
            image: `${registry.host}/busybox:latest`,
            command: ['/bin/busybox', 'true'],
            securityContext: { runAsNonRoot: true },
          },
        ])
      ).code,
      0,
    );
    const s = await waitForReason('nonroot', 'main', 'CreateContainerConfigError');
    assert.match(
      waitingOf(s, 'main')?.message ?? '',
      /runAsNonRoot is set but the container would run as UID 0.*set securityContext.runAsUser/,
    );
    assert.equal(condition(s, 'Stalled')?.reason, 'CreateContainerConfigError');
    assert.equal(condition(s, 'Reconciling'), undefined, 'not retried: nothing changes until the spec does');
    assert.match(s.status?.message ?? '', /^container main: /);
    const d = await describe('nonroot');
    assert.match(d, /CreateContainerConfigError/);
    assert.match(d, /Warning\s+Failed/);
  });

  it('a container that cannot start (its workingDir is a file): RunContainerError, Stalled', async () => {
    assert.equal(
      (
        await apply('nostart', [
          { name: 'main', image: `dir:${rootfs}`, command: ['/bin/sleep', '3600'], workingDir: '/bin/sh' },
        ])
      ).code,
      0,
    );
    const s = await waitForReason('nostart', 'main', 'RunContainerError');
    assert.equal(condition(s, 'Stalled')?.reason, 'RunContainerError');
    assert.match(await describe('nostart'), /RunContainerError/);
  });

  it('an agent that does not answer: Reconciling/Ready=False AgentUnreachable and a FailedApply Warning, then Running once it is back', async () => {
    await agent!.stop('SIGKILL'); // its lease stays fresh for a while: the controller still sends it the sandbox
    assert.equal(
      (await apply('noagent', [{ name: 'main', image: `dir:${rootfs}`, command: ['/bin/sleep', '3600'] }])).code,
      0,
    );
    const s = await waitFor(
      'AgentUnreachable',
      async () => {
        const x = await getSandbox(cp, ns, 'noagent');
        return condition(x, 'Reconciling')?.reason === 'AgentUnreachable' ? x : undefined;
      },
      30_000,
    );
    assert.equal(condition(s, 'Ready')?.reason, 'AgentUnreachable');
    assert.match(s.status?.message ?? '', /The agent on fail-a did not take the sandbox; the controller retries/);
    await waitFor(
      'the FailedApply Event',
      async () =>
        (await events('noagent')).some((e) =>
          /^Warning\/FailedApply: The agent on fail-a did not take the sandbox/.test(e),
        ) || undefined,
      15_000,
    );
    await startAgent();
    await cp.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'sandbox/noagent', '--timeout=120s']);
    assert.equal(condition((await getSandbox(cp, ns, 'noagent'))!, 'Reconciling'), undefined);
  });

  it('kubectl delete removes every failed sandbox and leaves nothing on the node (no state dir, no cgroup)', async () => {
    await cp.kubectl(['-n', ns, 'delete', 'sandboxes', '--all', '--wait=true', '--timeout=60s']);
    assert.equal((await cp.kubectl(['-n', ns, 'get', 'sandboxes', '-o', 'name'])).stdout.trim(), '');
    await waitFor('no state dirs', async () => readdirSync(stateRoot).length === 0 || undefined, 30_000);
    for (const root of readdirSync('/sys/fs/cgroup')) {
      const dir = join('/sys/fs/cgroup', root, cgroupParent);
      if (existsSync(dir))
        assert.deepEqual(
          readdirSync(dir, { withFileTypes: true })
            .filter((e) => e.isDirectory())
            .map((e) => e.name),
          [],
          'no sandbox cgroup',
        );
    }
  });
});
