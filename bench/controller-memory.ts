import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeClient } from '../lib/kube/client.js';
import { paths, type ObjectList } from '../lib/kube/resources.js';
import { loadKubeConfig } from '../lib/kube/kubeconfig.js';
import { ControlPlane } from '../test/harness/control-plane.js';
import { applyCRDs, applyManifests, startController, waitFor } from '../test/cluster/sandpit-processes.js';
import type { BenchResult } from './results-table.js';

/*
 * Controller memory with N Sandbox objects: the RSS of the controller process
 * (node dist/controllers/main.js) once it has cached and reconciled N
 * Sandboxes on a real kube-apiserver, peak over the following 40 s. The
 * Sandboxes stay Pending: their nodeSelector matches no node, so no agent is
 * involved and nothing is faked. Every one of them is in
 * the informer cache, has had its finalizer and Scheduled=False status
 * written and a requeue timer pending (the 5 min unschedulable backstop),
 * which is the controller's whole per-sandbox state (a bound sandbox adds
 * one entry to the applied set instead of the timer). The objects are created
 * with 32 requests in flight and reconciled by 32 workers.
 * Peer: the target (300 MB at 10 000 sandboxes), not a measurement.
 *   node dist/bench/controller-memory.js [N...]   (default 1000 10000)
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const counts = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0);
const sizes = counts.length ? counts : [1000, 10_000];
const TARGET_MB = 300;
const CONCURRENCY = 32;
const WINDOW_MS = 40_000;

const rssMB = (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

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

interface SandboxLite {
  metadata: { name: string };
  status?: { conditions?: { type: string; status: string }[] };
}

/** Sandboxes of the namespace whose Scheduled condition is False (the controller has reconciled them), by paged lists. */
async function countReconciled(client: KubeClient, ns: string): Promise<number> {
  let n = 0;
  let cont: string | undefined;
  do {
    const page = await client.get<ObjectList<SandboxLite>>(paths.sandboxes(ns), { limit: 2000, continue: cont });
    n += page.items.filter((s) =>
      s.status?.conditions?.some((c) => c.type === 'Scheduled' && c.status === 'False'),
    ).length;
    cont = page.metadata.continue || undefined;
  } while (cont);
  return n;
}

async function createMany(client: KubeClient, ns: string, n: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < n; i = next++) {
        await client.create(paths.sandboxes(ns), {
          apiVersion: 'sandpit.dev/v1alpha1',
          kind: 'Sandbox',
          // With the finalizer already on, as the controller would have added it: 10 000 fewer writes to wait for.
          metadata: {
            name: `m-${i}`,
            namespace: ns,
            labels: { app: 'memory-bench', shard: String(i % 16) },
            finalizers: ['sandpit.dev/cleanup'],
          },
          spec: {
            nodeSelector: { 'sandpit.bench/none': 'x' },
            resources: { cpu: '250m', memory: '128Mi' },
            containers: [
              {
                name: 'main',
                image: 'localhost:5000/sandpit/busybox:stable',
                command: ['sleep', '3600'],
                env: [{ name: 'INDEX', value: String(i) }],
              },
            ],
          },
        });
      }
    }),
  );
}

for (const n of sizes) {
  // A fresh control plane per size: the controller starts from nothing and lists everything, as after a restart.
  const cp = await ControlPlane.start();
  try {
    await applyCRDs(cp);
    await applyManifests(cp);
    const ns = 'membench';
    await cp.kubectl(['create', 'namespace', ns]);
    const client = await KubeClient.fromKubeConfig(loadKubeConfig(cp.kubeconfigPath));
    const t0 = performance.now();
    await createMany(client, ns, n);
    const created = performance.now() - t0;
    const controller = await startController(cp, 'membench', [
      '--namespace',
      'sandpit-system',
      '--leader-elect',
      'false',
      '--workers',
      '32',
    ]);
    try {
      const pid = controller.child.pid!;
      await waitFor(
        `${n} sandboxes reconciled`,
        async () => (await countReconciled(client, ns)) === n,
        1_800_000,
        5_000,
      );
      const reconciled = performance.now() - t0 - created;
      let peak = 0;
      const until = Date.now() + WINDOW_MS;
      while (Date.now() < until) {
        peak = Math.max(peak, rssMB(pid));
        await new Promise((r) => setTimeout(r, 250));
      }
      client.close();
      write({
        name: `controller-memory-${n}`,
        metric: `controller RSS with ${n} Sandboxes cached and reconciled (peak over ${WINDOW_MS / 1000} s after)`,
        unit: 'MB',
        ours: Math.round(peak),
        peer: `target (${TARGET_MB} MB at 10 000 sandboxes), not a measurement`,
        theirs: TARGET_MB,
        command: `node dist/bench/controller-memory.js ${n}`,
        note: `${n} creates took ${Math.round(created / 1000)} s (${CONCURRENCY} in flight), the controller reconciled them all in ${Math.round(reconciled / 1000)} s`,
      });
    } finally {
      await controller.stop();
    }
  } finally {
    await cp.stop();
  }
}
