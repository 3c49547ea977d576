import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpus, release, totalmem } from 'node:os';
import type { SandboxNode } from '../../crds/sandboxnode.js';
import { parseQuantity } from '../../crds/quantity.js';
import { sandboxIdFor } from '../../node-agent/contracts.js';
import { ContentStore } from '../../node-agent/images/store.js';
import { detectCgroupMode } from '../../node-agent/registration/facts.js';
import { buildBusyboxRootfs } from '../fixtures/busybox-rootfs.js';
import { freePort, sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
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
} from './sandpit-processes.js';

/*
 * Controller and agent as processes, the agent running real sandboxes as
 * root through the node runtime (namespaces, cgroups, overlay root from an
 * unpacked busybox image; loopback-only network). kubectl is the client.
 */
describe('cluster: sandboxes end to end through controller, agent and runtime (root)', function () {
  this.timeout(300_000);
  const ns = 'e2e-test';
  const node = 'e2e-a';
  const ROOT = new URL('../../..', import.meta.url).pathname;
  let cp: ControlPlane;
  let controller: ControllerProcess;
  let agent: AgentProcess | undefined;
  let stateRoot: string;
  let agentKc: string;
  let agentLog: string;
  let apiPort: number;
  const rootfs = buildBusyboxRootfs(join(tmpdir(), 'sandpit-test-rootfs'));
  const cgroupParent = `sandpit-e2e-${process.pid}`;

  async function startAgent(): Promise<void> {
    agent = await startAgentProcess({
      kubeconfig: agentKc,
      node,
      apiPort,
      leaseDuration: 6,
      labels: 'sandpit.test/e2e=yes',
      allowDirImages: rootfs,
      stateRoot,
      cgroupParent,
      logPath: agentLog,
    });
  }
  const manifest = (name: string, over: Record<string, unknown> = {}) =>
    JSON.stringify({
      apiVersion: 'sandpit.dev/v1alpha1',
      kind: 'Sandbox',
      metadata: { name, namespace: ns },
      spec: {
        nodeSelector: { 'sandpit.test/e2e': 'yes' },
        network: { mode: 'None' },
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'main', image: `dir:${rootfs}`, command: ['/bin/sleep', '3600'] }],
        ...over,
      },
    });
  const pid1Of = (uid: string) => {
    const rec = JSON.parse(readFileSync(join(stateRoot, sandboxIdFor(uid), 'sandbox.json'), 'utf8')) as {
      pid1?: { pid: number };
    };
    return rec.pid1?.pid;
  };

  before(async () => {
    cp = await sharedControlPlane();
    await applyCRDs(cp);
    await applyManifests(cp);
    await cp.kubectl(['create', 'namespace', ns]).catch(() => undefined);
    stateRoot = await mkdtemp(join(tmpdir(), 'sandpit-e2e-state-'));
    agentLog = join(cp.dir, 'agent-e2e.log');
    apiPort = await freePort();
    agentKc = await agentKubeconfig(cp, node);
    controller = await startController(cp, 'e2e', [
      '--namespace',
      'sandpit-system',
      '--leader-elect',
      'false',
      '--resync-period',
      '5',
      '--node-lost-grace',
      '120',
    ]);
    await startAgent();
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      process.stderr.write(`agent log tail:\n${(await readFile(agentLog, 'utf8').catch(() => '')).slice(-5000)}\n`);
      process.stderr.write(`controller log tail:\n${(await controllerLog(controller)).slice(-3000)}\n`);
    }
  });

  after(async () => {
    // Let the agent delete what is left through the normal path before it stops.
    await cp.kubectlResult(['-n', ns, 'delete', 'sandboxes', '--all', '--wait=true', '--timeout=60s']);
    await agent?.stop('SIGTERM');
    await controller?.stop();
    await cleanUp(cp, [ns], [node]);
    await rm(stateRoot, { recursive: true, force: true });
    await rm(`${stateRoot}-images`, { recursive: true, force: true });
    // The runtime leaves its (empty) cgroup parent behind; it is ours, named for this run.
    for (const root of readdirSync('/sys/fs/cgroup')) {
      const dir = join('/sys/fs/cgroup', root, cgroupParent);
      if (existsSync(dir)) await rmdirDeep(dir);
    }
  });

  it('registers the node with its facts, capacity, image disk usage, endpoint and a serving certificate from the controller', async () => {
    const n = await waitFor(
      'SandboxNode ready',
      async () => {
        const r = await cp.kubectlResult(['get', 'sandboxnode', node, '-o', 'json']);
        if (r.code !== 0) return undefined;
        const o = JSON.parse(r.stdout) as { status?: SandboxNode['status'] };
        return o.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? o : undefined;
      },
      120_000,
    );
    const st = n.status!;
    assert.equal(st.endpoint, `https://127.0.0.1:${apiPort}`);
    assert.equal(st.hostIP, '127.0.0.1');
    assert.equal(st.sandboxCIDR, process.env.SANDPIT_SUBNET ?? '10.88.0.0/24', "the subnet the agent's bridge takes");
    assert.equal(st.kernelVersion, release());
    assert.equal(st.cgroupMode, detectCgroupMode());
    assert.equal(
      st.agentVersion,
      (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
    );
    assert.deepEqual(st.capacity, {
      cpu: String(cpus().length),
      memory: `${Math.floor(totalmem() / 1024)}Ki`,
      sandboxes: 110,
    });
    assert.equal(st.allocatable?.sandboxes, 110);
    assert.ok(
      parseQuantity(st.allocatable!.cpu!) < cpus().length && parseQuantity(st.allocatable!.memory!) < totalmem(),
      'allocatable keeps a reserve for the node',
    );
    // What the agent's image store takes on disk, as the store itself counts it (empty here: only dir: images run).
    assert.equal(st.imageDiskUsageBytes, new ContentStore(`${stateRoot}-images`).diskUsage().total);
    assert.ok((st.imageDiskUsageBytes ?? 0) > 0);
    // Node pressure, reported like kubelet's; this machine has room for the tests, so all three are False.
    for (const type of ['MemoryPressure', 'DiskPressure', 'PIDPressure'])
      assert.equal(st.conditions?.find((c) => c.type === type)?.status, 'False', `${type} reported and False`);
  });

  it('kubectl apply → Ready with running containers; kubectl wait --for=condition=Ready works', async () => {
    await cp.kubectl(['apply', '-f', '-'], { input: manifest('web') });
    await cp.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'sandbox/web', '--timeout=90s']);
    const s = (await getSandbox(cp, ns, 'web'))!;
    assert.equal(s.status?.phase, 'Running');
    assert.equal(s.status?.nodeName, node);
    assert.equal(s.status?.observedGeneration, s.metadata.generation);
    const cs =
      (s.status as { containerStatuses?: { name: string; ready: boolean; state?: { running?: unknown } }[] })
        .containerStatuses ?? [];
    assert.equal(cs[0]?.ready, true);
    assert.ok(cs[0]?.state?.running);
    const pid = pid1Of(s.metadata.uid);
    assert.ok(pid && existsSync(`/proc/${pid}`), 'PID 1 of the sandbox runs on the node');
    // managedFields name who wrote what (the API server takes the manager from the User-Agent).
    const full = JSON.parse(
      (await cp.kubectl(['-n', ns, 'get', 'sandbox', 'web', '--show-managed-fields', '-o', 'json'])).stdout,
    ) as { metadata: { managedFields?: { manager: string }[] } };
    const managers = (full.metadata.managedFields ?? []).map((f) => f.manager);
    assert.ok(managers.includes('sandpit-controller'), `the controller's writes are its own: ${managers.join(', ')}`);
    assert.ok(managers.includes('sandpit-agent'), `the agent's status writes are its own: ${managers.join(', ')}`);
    // kubectl describe tells the story: the controller's Scheduled, the agent's Started.
    const told = async () => {
      const list = JSON.parse(
        (
          await cp.kubectl([
            '-n',
            ns,
            'get',
            'events.events.k8s.io',
            '--field-selector',
            'regarding.name=web',
            '-o',
            'json',
          ])
        ).stdout,
      ) as { items: { reason: string; reportingController: string; note: string }[] };
      return list.items.map((e) => `${e.reportingController}/${e.reason}: ${e.note}`);
    };
    const events = await waitFor(
      "the agent's Started Event",
      async () => {
        const e = await told();
        return e.some((x) => x.startsWith('sandpit.dev/agent/Started')) ? e : undefined;
      },
      15_000,
    );
    assert.ok(events.includes('sandpit.dev/agent/Started: Started container main'), events.join('; '));
    assert.ok(
      events.some((x) => /\/Scheduled: Bound to node /.test(x)),
      events.join('; '),
    );
    // The node's count follows at its next status sync.
    await waitFor(
      'SandboxNode counts the sandbox',
      async () => (await cp.kubectl(['get', 'sandboxnode', node, '-o', 'jsonpath={.status.sandboxes}'])).stdout === '1',
      30_000,
    );
  });

  it('freezes and thaws with spec.paused; observedGeneration follows', async () => {
    await cp.kubectl(['-n', ns, 'patch', 'sandbox', 'web', '--type=merge', '-p', '{"spec":{"paused":true}}']);
    const paused = await waitFor('web Paused', async () => {
      const s = await getSandbox(cp, ns, 'web');
      return s?.status?.phase === 'Paused' && s.status.observedGeneration === s.metadata.generation ? s : undefined;
    });
    assert.equal(
      condition(paused, 'Ready'),
      undefined,
      'no Ready while paused: kstatus reads Ready=False as InProgress',
    );
    await cp.kubectl(['-n', ns, 'patch', 'sandbox', 'web', '--type=merge', '-p', '{"spec":{"paused":false}}']);
    await cp.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'sandbox/web', '--timeout=60s']);
  });

  it('keeps sandboxes running while the agent is killed; the node goes NotReady and comes back Ready, statuses stay right', async () => {
    const s = (await getSandbox(cp, ns, 'web'))!;
    const pid = pid1Of(s.metadata.uid)!;
    await agent?.stop('SIGKILL');
    await waitFor(
      'node NotReady',
      async () => {
        const r = await cp.kubectl([
          'get',
          'sandboxnode',
          node,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ]);
        return r.stdout.trim() === 'Unknown';
      },
      60_000,
    );
    await waitFor(
      'web Ready=Unknown',
      async () => condition(await getSandbox(cp, ns, 'web'), 'Ready')?.status === 'Unknown',
      30_000,
    );
    assert.ok(existsSync(`/proc/${pid}`), 'the sandbox outlives its agent');
    await startAgent();
    const back = await waitFor(
      'web Running and Ready again',
      async () => {
        const s = await getSandbox(cp, ns, 'web');
        return s?.status?.phase === 'Running' && condition(s, 'Ready')?.status === 'True' ? s : undefined;
      },
      90_000,
    );
    assert.equal(pid1Of(back.metadata.uid), pid, 're-adopted, not recreated');
  });

  it('converges an edited container by restarting it in the same sandbox, and a sandbox-level edit by recreating it, each with an Event naming the fields', async () => {
    const agentEvents = async () => {
      const list = JSON.parse(
        (
          await cp.kubectl([
            '-n',
            ns,
            'get',
            'events.events.k8s.io',
            '--field-selector',
            'regarding.name=web',
            '-o',
            'json',
          ])
        ).stdout,
      ) as { items: { reason: string; reportingController: string; note: string }[] };
      return list.items
        .filter((e) => e.reportingController === 'sandpit.dev/agent')
        .map((e) => `${e.reason}: ${e.note}`);
    };
    const converged = (gen: number) => async () => {
      const s = await getSandbox(cp, ns, 'web');
      return s &&
        s.metadata.generation > gen &&
        s.status?.observedGeneration === s.metadata.generation &&
        condition(s, 'Ready')?.status === 'True'
        ? s
        : undefined;
    };
    const before = (await getSandbox(cp, ns, 'web'))!;
    const pid = pid1Of(before.metadata.uid);
    await cp.kubectl([
      '-n',
      ns,
      'patch',
      'sandbox',
      'web',
      '--type=json',
      '-p',
      JSON.stringify([{ op: 'replace', path: '/spec/containers/0/command', value: ['/bin/sleep', '7200'] }]),
    ]);
    const restarted = await waitFor(
      'web converged at the new generation',
      converged(before.metadata.generation),
      90_000,
    );
    assert.equal(pid1Of(restarted.metadata.uid), pid, 'the same sandbox: only the container restarted');
    const cs = (restarted.status as { containerStatuses?: { restartCount: number }[] }).containerStatuses ?? [];
    assert.equal(cs[0]?.restartCount, 1);
    const killing = await waitFor(
      'the Killing Event',
      async () => (await agentEvents()).find((e) => e.startsWith('Killing:')),
      15_000,
    );
    assert.equal(killing, 'Killing: Container main definition changed (command), will be restarted');

    await cp.kubectl(['-n', ns, 'patch', 'sandbox', 'web', '--type=merge', '-p', '{"spec":{"hostname":"renamed"}}']);
    const recreated = await waitFor(
      'web recreated at the new generation',
      converged(restarted.metadata.generation),
      90_000,
    );
    assert.notEqual(pid1Of(recreated.metadata.uid), pid, 'a new hostname needs a new sandbox');
    const changed = await waitFor(
      'the SandboxChanged Event',
      async () => (await agentEvents()).find((e) => e.startsWith('SandboxChanged:')),
      15_000,
    );
    assert.equal(changed, 'SandboxChanged: Sandbox spec changed (spec.hostname), it will be killed and re-created');
  });

  it('kubectl delete → everything gone on the node and the finalizer removed', async () => {
    const s = (await getSandbox(cp, ns, 'web'))!;
    const pid = pid1Of(s.metadata.uid)!;
    await cp.kubectl(['-n', ns, 'delete', 'sandbox', 'web', '--timeout=90s']);
    assert.equal(await getSandbox(cp, ns, 'web'), undefined);
    await waitFor(
      'PID 1 gone',
      async () => !existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] === 'Z',
      30_000,
    );
    assert.equal(existsSync(join(stateRoot, sandboxIdFor(s.metadata.uid))), false, 'no state left on the node');
  });

  it('creates no duplicates when the controller is killed mid-reconcile and restarted', async () => {
    const names = ['dup-0', 'dup-1', 'dup-2', 'dup-3', 'dup-4'];
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: names.map((n) => JSON.parse(manifest(n)) as unknown),
      }),
    });
    // Killed mid-reconcile: once it has begun on them (a finalizer is its first write), not before.
    await waitFor('the controller to begin on them', async () => {
      const r = await cp.kubectl(['-n', ns, 'get', 'sandboxes', '-o', 'jsonpath={.items[*].metadata.finalizers}']);
      return r.stdout.includes('sandpit.dev/cleanup');
    });
    await controller.stop('SIGKILL');
    controller = await startController(cp, 'e2e-restarted', [
      '--namespace',
      'sandpit-system',
      '--leader-elect',
      'false',
      '--resync-period',
      '5',
    ]);
    await cp.kubectl([
      '-n',
      ns,
      'wait',
      '--for=condition=Ready',
      ...names.map((n) => `sandbox/${n}`),
      '--timeout=120s',
    ]);
    const uids = await Promise.all(names.map(async (n) => (await getSandbox(cp, ns, n))!.metadata.uid));
    const onNode = readdirSync(stateRoot).filter((d) => /^[0-9a-f]{12}$/.test(d));
    assert.deepEqual(
      onNode.sort(),
      uids.map((u) => sandboxIdFor(u)).sort(),
      'exactly one sandbox on the node per Sandbox object',
    );
    const pids = uids.map((u) => pid1Of(u));
    assert.equal(new Set(pids).size, names.length, 'each runs its own PID 1');
    await cp.kubectl(['-n', ns, 'delete', ...names.map((n) => `sandbox/${n}`), '--timeout=120s']);
  });

  it('deletes on the node what the cluster no longer has (resync)', async () => {
    await cp.kubectl(['apply', '-f', '-'], { input: manifest('orphan') });
    await cp.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'sandbox/orphan', '--timeout=90s']);
    const s = (await getSandbox(cp, ns, 'orphan'))!;
    // Simulate a missed delete: strip the finalizer and delete while the controller is away.
    await controller.stop();
    await cp.kubectl([
      '-n',
      ns,
      'patch',
      'sandbox',
      'orphan',
      '--type=merge',
      '-p',
      '{"metadata":{"finalizers":null}}',
    ]);
    await cp.kubectl(['-n', ns, 'delete', 'sandbox', 'orphan']);
    assert.ok(existsSync(join(stateRoot, sandboxIdFor(s.metadata.uid))));
    controller = await startController(cp, 'e2e-2', [
      '--namespace',
      'sandpit-system',
      '--leader-elect',
      'false',
      '--resync-period',
      '3',
    ]);
    await waitFor(
      'orphan removed from the node',
      async () => !existsSync(join(stateRoot, sandboxIdFor(s.metadata.uid))),
      60_000,
    );
  });
});
