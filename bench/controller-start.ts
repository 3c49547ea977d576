import { spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeClient } from '../lib/kube/client.js';
import { paths, type ObjectList } from '../lib/kube/resources.js';
import { loadKubeConfig } from '../lib/kube/kubeconfig.js';
import { buildBusyboxRootfs } from '../test/fixtures/busybox-rootfs.js';
import { ControlPlane, freePort } from '../test/harness/control-plane.js';
import {
  agentKubeconfig,
  applyCRDs,
  applyManifests,
  startController,
  waitFor,
} from '../test/cluster/sandpit-processes.js';
import type { BenchResult } from './results-table.js';

/*
 * Apply-to-Ready latency of Sandboxes: POST of N Sandboxes at once to a real
 * kube-apiserver, until each shows Ready=True, through the controller
 * (schedule, bind, PUT over mTLS) and one agent running them with the node
 * runtime as root (busybox rootfs, loopback network). Timed on this client's
 * clock from the POST to the first poll (every 20 ms) that sees Ready.
 * Peer: the Kubernetes pod start-up SLO (5 s at p99), a target, not a run.
 * Each result's note says what the control plane spent: API requests per
 * sandbox by verb and resource (kube-apiserver's apiserver_request_total
 * before and after, watches left out) and the CPU-seconds of kube-apiserver,
 * etcd, the controller and the agent (/proc/<pid>/stat).
 *   node dist/bench/controller-start.js [N...]   (default 1 10)
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const counts = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0);
const sizes = counts.length ? counts : [1, 10];

interface SandboxLite {
  metadata: { name: string };
  status?: { nodeName?: string; conditions?: { type: string; status: string }[] };
}

/** CPU seconds (user+system, own threads) of a process, from /proc/<pid>/stat; 0 once it is gone. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}
/** Busy CPU seconds of the whole machine (all cores), from /proc/stat. */
function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!) / 100;
}
/** PIDs of this run's etcd and kube-apiserver (their command lines name the control plane's directory). */
function controlPlanePids(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (!argv.some((a) => a.includes(dir))) continue;
      if (argv[0]!.endsWith('kube-apiserver')) out.apiserver = Number(pid);
      else if (argv[0]!.endsWith('etcd')) out.etcd = Number(pid);
    } catch {
      /* gone */
    }
  }
  return out;
}

/** apiserver_request_total by verb and resource (with subresource), from the API server's /metrics. */
async function requestCounts(cp: ControlPlane): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const text = (await cp.kubectl(['get', '--raw', '/metrics'])).stdout;
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const label = (k: string) => new RegExp(`${k}="([^"]*)"`).exec(line)?.[1] ?? '';
    const key = `${label('verb')} ${label('resource')}${label('subresource') ? `/${label('subresource')}` : ''}`;
    out.set(key, (out.get(key) ?? 0) + Number(line.split(' ').pop()));
  }
  return out;
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;

function write(r: Omit<BenchResult, 'date' | 'ratio'>): void {
  const result: BenchResult = {
    ...r,
    ratio: r.theirs ? Number((r.ours / r.theirs).toFixed(3)) : null,
    date: new Date().toISOString(),
  };
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', `${r.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result));
}

// SANDPIT_BENCH_DIR keeps the control plane's directory (controller and agent logs) for profiling;
// SANDPIT_BENCH_AGENT_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") are node options for the agent;
// SANDPIT_BENCH_AGENT_LOG_LEVEL=info makes the agent log each sandbox's step timings there.
const cp = await ControlPlane.start(process.env.SANDPIT_BENCH_DIR ? { dir: process.env.SANDPIT_BENCH_DIR } : {});
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
  const rootfs = buildBusyboxRootfs(join(tmpdir(), 'sandpit-test-rootfs'));
  const kc = await agentKubeconfig(cp, 'bench-node');
  const fd = openSync(join(cp.dir, 'agent.log'), 'a');
  agent = spawn(
    process.execPath,
    [
      ...(process.env.SANDPIT_BENCH_AGENT_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      join(ROOT, 'dist/node-agent/main.js'),
      '--kubeconfig',
      kc,
      '--node-name',
      'bench-node',
      '--listen',
      `127.0.0.1:${await freePort()}`,
      '--health-addr',
      `127.0.0.1:${await freePort()}`,
      '--max-sandboxes',
      '500',
      '--allow-dir-images',
      rootfs,
    ],
    {
      stdio: ['ignore', fd, fd],
      env: {
        ...process.env,
        SANDPIT_STATE_ROOT: stateRoot,
        SANDPIT_IMAGE_ROOT: `${stateRoot}-images`,
        SANDPIT_CGROUP_PARENT: cgroupParent,
        SANDPIT_LOG_LEVEL: process.env.SANDPIT_BENCH_AGENT_LOG_LEVEL ?? 'warn',
      },
    },
  );
  closeSync(fd);
  await waitFor(
    'node Ready',
    async () =>
      (
        await cp.kubectl([
          'get',
          'sandboxnode',
          'bench-node',
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ])
      ).stdout === 'True',
    120_000,
  );
  const client = await KubeClient.fromKubeConfig(loadKubeConfig(cp.kubeconfigPath));

  const cpPids = controlPlanePids(cp.dir);
  const procs = {
    agent: agent.pid,
    controller: controller.child.pid,
    apiserver: cpPids.apiserver,
    etcd: cpPids.etcd,
    bench: process.pid,
  };
  const cpuNow = () => ({
    machine: machineBusySeconds(),
    ...Object.fromEntries(Object.entries(procs).map(([k, pid]) => [k, cpuSeconds(pid)])),
  });
  for (const n of sizes) {
    const cpu0 = cpuNow();
    const req0 = await requestCounts(cp);
    const started = new Map<string, number>();
    const ready = new Map<string, number>();
    const bound = new Map<string, number>();
    // A watch, like `kubectl wait`: each transition is timed when its event arrives, and the
    // measurement does not load the API server with lists of every sandbox every few ms.
    const seen = (s: SandboxLite) => {
      const now = performance.now();
      const name = s.metadata.name;
      if (!started.has(name)) return;
      if (!bound.has(name) && s.status?.nodeName) bound.set(name, now);
      if (!ready.has(name) && s.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
        ready.set(name, now);
    };
    // The API server may end a watch whenever it likes: list again (timing what the list shows now) and resume.
    const stop = new AbortController();
    const watching = (async () => {
      while (!stop.signal.aborted) {
        const from = await client.get<ObjectList<SandboxLite>>(paths.sandboxes('bench'));
        for (const s of from.items) seen(s);
        await client
          .watch<SandboxLite>(
            paths.sandboxes('bench'),
            { resourceVersion: from.metadata.resourceVersion, allowWatchBookmarks: false },
            (ev) => seen(ev.object),
            { idleMs: 330_000, signal: stop.signal },
          )
          .catch((err: Error) => {
            if (!stop.signal.aborted) throw err;
          });
      }
    })().catch((err: Error) => err);
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const name = `s${n}-${i}`;
        started.set(name, performance.now());
        await client.create(paths.sandboxes('bench'), {
          apiVersion: 'sandpit.dev/v1alpha1',
          kind: 'Sandbox',
          metadata: { name, namespace: 'bench' },
          spec: {
            network: { mode: 'None' },
            terminationGracePeriodSeconds: 0,
            containers: [{ name: 'main', image: `dir:${rootfs}`, command: ['/bin/sleep', '3600'] }],
          },
        });
      }),
    );
    const deadline = Date.now() + 300_000;
    while (ready.size < n && Date.now() < deadline) {
      const ended = await Promise.race([watching, new Promise((r) => setTimeout(r, 200, 'tick'))]);
      if (ended !== 'tick') throw new Error(`watching sandboxes failed: ${String(ended)}`);
    }
    stop.abort();
    await watching;
    if (ready.size < n)
      throw new Error(`only ${ready.size}/${n} sandboxes became Ready within 300 s (logs in ${cp.dir})`);
    const lat = [...ready].map(([name, t]) => t - started.get(name)!);
    // Where the time goes: POST to bound (controller: finalizer, schedule, binding) and bound to Ready (agent: create, status).
    const toBound = [...bound].map(([name, t]) => t - started.get(name)!);
    const boundToReady = [...ready].filter(([name]) => bound.has(name)).map(([name, t]) => t - bound.get(name)!);
    const cpu1 = cpuNow();
    const req1 = await requestCounts(cp);
    const requests: Record<string, number> = Object.fromEntries(
      [...req1]
        .map(([k, v]): [string, number] => [k, v - (req0.get(k) ?? 0)])
        .filter(([k, v]) => v > 0 && !k.startsWith('WATCH')),
    );
    const cpu = Object.fromEntries(
      Object.entries(cpu1).map(([k, v]) => [k, Number((v - cpu0[k as keyof typeof cpu0]).toFixed(2))]),
    );
    // What the control plane spends per sandbox: API requests (the bench's own POST included; heartbeats,
    // lease renewals and the like are counted in the total but too rare to be listed) and CPU.
    const perSandbox = (v: number) => Number((v / n).toFixed(2));
    const total = Object.values(requests).reduce((a, b) => a + b, 0);
    const listed = Object.entries(requests)
      .filter(([, v]) => v >= n / 10)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${k} ${perSandbox(v)}`);
    const controlPlane = Number((cpu.apiserver! + cpu.etcd! + cpu.controller!).toFixed(2));
    console.error(
      JSON.stringify({
        n,
        cpuSeconds: cpu,
        requests,
        boundP50: Math.round(pct(toBound, 50)),
        boundP99: Math.round(pct(toBound, 99)),
        boundToReadyP50: Math.round(pct(boundToReady, 50)),
        boundToReadyP99: Math.round(pct(boundToReady, 99)),
      }),
    );
    for (const p of [50, 99]) {
      write({
        name: `controller-start-${n}-p${p}`,
        metric: `apply-to-Ready latency p${p}, ${n} concurrent Sandboxes on one node`,
        unit: 'ms',
        ours: Math.round(pct(lat, p)),
        peer: 'Kubernetes pod start-up SLO (p99 target, not a measurement)',
        theirs: 5000,
        command: `node dist/bench/controller-start.js ${n}`,
        note:
          `load average ${loadavg()[0]!.toFixed(1)} at the end (2 cores shared with other test runs); ` +
          `${perSandbox(total)} API requests per sandbox (${listed.join(', ')}); ` +
          `control plane ${controlPlane} CPU-s for the ${n} (kube-apiserver ${cpu.apiserver}, etcd ${cpu.etcd}, controller ${cpu.controller}), agent ${cpu.agent} CPU-s`,
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
