import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ControlPlane } from '../test/harness/control-plane.js';
import { applyCRDs, startController, waitFor } from '../test/cluster/sandpit-processes.js';
import type { BenchResult } from './results-table.js';

/*
 * Leader failover of sandpit-controller with the default 15 s / 10 s / 2 s
 * Lease timings: two replicas against a real kube-apiserver; the leader is
 * SIGKILLed (no release) and we time until the Lease names the standby.
 * Then the same with SIGTERM (the leader releases the Lease on its way out).
 * Peer: client-go's worst case for a crash, lease duration + retry period (17 s).
 *   node dist/bench/controller-failover.js
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

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

const cp = await ControlPlane.start();
const procs: Awaited<ReturnType<typeof startController>>[] = [];
try {
  await applyCRDs(cp);
  await cp.kubectl(['create', 'namespace', 'sandpit-system']);
  const holder = async () =>
    (
      await cp.kubectlResult([
        '-n',
        'sandpit-system',
        'get',
        'lease',
        'sandpit-controller',
        '-o',
        'jsonpath={.spec.holderIdentity}',
      ])
    ).stdout.trim();
  for (const id of ['a', 'b', 'c']) procs.push(await startController(cp, id, ['--namespace', 'sandpit-system']));
  const measure = async (signal: NodeJS.Signals) => {
    const leader = await waitFor('a leader', async () => (await holder()) || undefined);
    const p = procs.find((x) => x.identity === leader)!;
    const t0 = performance.now();
    await p.stop(signal);
    await waitFor(
      'a new leader',
      async () => {
        const h = await holder();
        return h && h !== leader ? h : undefined;
      },
      60_000,
      50,
    );
    return performance.now() - t0;
  };
  const kill = await measure('SIGKILL');
  write({
    name: 'controller-failover-kill',
    metric: 'leader failover after SIGKILL of the leader (default 15 s lease)',
    unit: 'ms',
    ours: Math.round(kill),
    peer: 'client-go worst case (lease duration + retry period)',
    theirs: 17_000,
    command: 'node dist/bench/controller-failover.js',
  });
  const term = await measure('SIGTERM');
  write({
    name: 'controller-failover-term',
    metric: 'leader handover after SIGTERM of the leader (lease released)',
    unit: 'ms',
    ours: Math.round(term),
    peer: 'client-go worst case (lease duration + retry period)',
    theirs: 17_000,
    command: 'node dist/bench/controller-failover.js',
  });
} finally {
  for (const p of procs) await p.stop('SIGKILL');
  await cp.stop();
}
