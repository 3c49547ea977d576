import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeClient } from '../controllers/client/kube.js';
import { paths, type ObjectList } from '../controllers/client/resources.js';
import { loadKubeConfig } from '../controllers/kubeconfig.js';
import { buildBusyboxRootfs } from '../test/fixtures/busybox-rootfs.js';
import { ControlPlane, freePort } from '../test/harness/control-plane.js';
import { agentKubeconfig, applyCRDs, applyManifests, startController, waitFor } from '../test/cluster/sandpit-processes.js';
import type { BenchResult } from './results-table.js';

/*
 * Apply-to-Ready latency of Sandboxes: POST of N Sandboxes at once to a real
 * kube-apiserver, until each shows Ready=True, through the controller
 * (schedule, bind, PUT over mTLS) and one agent running them with the node
 * runtime as root (busybox rootfs, loopback network). Timed on this client's
 * clock from the POST to the first poll (every 20 ms) that sees Ready.
 * Peer: the Kubernetes pod start-up SLO (5 s at p99), a target, not a run.
 *   node dist/bench/controller-start.js [N...]   (default 1 10)
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const counts = process.argv.slice(2).map(Number).filter((n) => n > 0);
const sizes = counts.length ? counts : [1, 10];

interface SandboxLite {
  metadata: { name: string };
  status?: { conditions?: { type: string; status: string }[] };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;

function write(r: Omit<BenchResult, 'date' | 'ratio'>): void {
  const result: BenchResult = { ...r, ratio: r.theirs ? Number((r.ours / r.theirs).toFixed(3)) : null, date: new Date().toISOString() };
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', `${r.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result));
}

const cp = await ControlPlane.start();
const stateRoot = mkdtempSync(join(tmpdir(), 'sandpit-bench-state-'));
const cgroupParent = `sandpit-bench-${process.pid}`;
let agent: ChildProcess | undefined;
const controller = await (async () => {
  await applyCRDs(cp);
  await applyManifests(cp);
  await cp.kubectl(['create', 'namespace', 'bench']);
  return startController(cp, 'bench', ['--namespace', 'sandpit-system', '--leader-elect', 'false', '--workers', '8']);
})();
try {
  const kc = await agentKubeconfig(cp, 'bench-node');
  const fd = openSync(join(cp.dir, 'agent.log'), 'a');
  agent = spawn(
    process.execPath,
    [join(ROOT, 'dist/node-agent/main.js'), '--kubeconfig', kc, '--node-name', 'bench-node', '--listen', `127.0.0.1:${await freePort()}`, '--health-addr', `127.0.0.1:${await freePort()}`, '--max-sandboxes', '500'],
    { stdio: ['ignore', fd, fd], env: { ...process.env, SANDPIT_STATE_ROOT: stateRoot, SANDPIT_IMAGE_ROOT: `${stateRoot}-images`, SANDPIT_CGROUP_PARENT: cgroupParent, SANDPIT_LOG_LEVEL: 'warn' } },
  );
  closeSync(fd);
  await waitFor('node Ready', async () => (await cp.kubectl(['get', 'sandboxnode', 'bench-node', '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'])).stdout === 'True', 120_000);
  const client = await KubeClient.fromKubeConfig(loadKubeConfig(cp.kubeconfigPath));
  const rootfs = buildBusyboxRootfs(join(tmpdir(), 'sandpit-test-rootfs'));

  for (const n of sizes) {
    const started = new Map<string, number>();
    const ready = new Map<string, number>();
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const name = `s${n}-${i}`;
        started.set(name, performance.now());
        await client.create(paths.sandboxes('bench'), {
          apiVersion: 'sandpit.dev/v1alpha1',
          kind: 'Sandbox',
          metadata: { name, namespace: 'bench' },
          spec: { network: { mode: 'None' }, terminationGracePeriodSeconds: 0, containers: [{ name: 'main', image: `dir:${rootfs}`, command: ['/bin/sleep', '3600'] }] },
        });
      }),
    );
    const deadline = Date.now() + 300_000;
    while (ready.size < n && Date.now() < deadline) {
      const list = await client.get<ObjectList<SandboxLite>>(paths.sandboxes('bench'));
      const now = performance.now();
      for (const s of list.items) {
        if (started.has(s.metadata.name) && !ready.has(s.metadata.name) && s.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) ready.set(s.metadata.name, now);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    if (ready.size < n) throw new Error(`only ${ready.size}/${n} sandboxes became Ready within 300 s (logs in ${cp.dir})`);
    const lat = [...ready].map(([name, t]) => t - started.get(name)!);
    for (const p of [50, 99]) {
      write({
        name: `controller-start-${n}-p${p}`,
        metric: `apply-to-Ready latency p${p}, ${n} concurrent Sandboxes on one node`,
        unit: 'ms',
        ours: Math.round(pct(lat, p)),
        peer: 'Kubernetes pod start-up SLO (p99 target, not a measurement)',
        theirs: 5000,
        command: `node dist/bench/controller-start.js ${n}`,
      });
    }
    await cp.kubectl(['-n', 'bench', 'delete', 'sandboxes', '--all', '--timeout=300s']);
  }
} finally {
  if (agent && agent.exitCode === null) {
    const exited = new Promise((r) => agent!.once('exit', r));
    agent.kill('SIGTERM');
    await exited;
  }
  await controller.stop();
  await cp.stop();
  rmSync(stateRoot, { recursive: true, force: true });
  rmSync(`${stateRoot}-images`, { recursive: true, force: true });
  for (const root of readdirSync('/sys/fs/cgroup')) {
    try {
      rmdirSync(join('/sys/fs/cgroup', root, cgroupParent));
    } catch {
      /* absent or not empty */
    }
  }
}
