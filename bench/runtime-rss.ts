import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox } from '../crds/sandbox.js';
import { createLogger } from '../lib/log.js';
import { defaultConfig } from '../node-agent/runtime/config.js';
import { DirectoryImageProvider } from '../node-agent/runtime/directory-image.js';
import { LoopbackOnlyNetwork } from '../node-agent/runtime/none-network.js';
import { SandboxSupervisor } from '../node-agent/runtime/supervisor.js';
import { nodeEffects } from '../node-agent/runtime/deps.js';
import type { SandboxRecord } from '../node-agent/runtime/record.js';
import { buildBusyboxRootfs } from '../test/fixtures/busybox-rootfs.js';

/*
 * Host memory that sandpit keeps per idle sandbox: its PID 1 and one shim per
 * container, both sandpit-init -- the workload itself is the user's, and the
 * agent (one Node process for all sandboxes) is reported on the side.
 * RSS counts every page mapped into each process, shared ones included (so it
 * over-counts what N sandboxes cost together); PSS splits shared pages among
 * their users and is what N sandboxes really add. The headline number is RSS,
 * the stricter of the two, as the issue asks.
 */

const TMP = join(process.cwd(), 'bench/tmp/runtime');
const RESULTS = join(process.cwd(), 'bench/results');
const STEPS = (process.env.BENCH_RSS_STEPS ?? '100,500').split(',').map(Number);

function memKiB(pid: number): { rss: number; pss: number } {
  try {
    const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    return { rss: Number(/^Rss:\s+(\d+)/m.exec(t)?.[1] ?? 0), pss: Number(/^Pss:\s+(\d+)/m.exec(t)?.[1] ?? 0) };
  } catch {
    return { rss: 0, pss: 0 };
  }
}

function perSandbox(recs: SandboxRecord[]): { rss: number; pss: number } {
  let rss = 0;
  let pss = 0;
  for (const r of recs) {
    for (const pid of [r.pid1!.pid, ...r.containers.map((c) => c.pid!)]) {
      const m = memKiB(pid);
      rss += m.rss;
      pss += m.pss;
    }
  }
  return { rss: rss / recs.length, pss: pss / recs.length };
}

async function main(): Promise<void> {
  buildBusyboxRootfs(join(TMP, 'rootfs'));
  const config = defaultConfig({
    stateRoot: join(TMP, 'state-rss'),
    cgroupParent: 'sandpit-bench-rss',
    pollMs: 500,
    launchers: 3,
  });
  const rt = await SandboxSupervisor.start(config, {
    ...(await nodeEffects(config)),
    images: new DirectoryImageProvider(),
    network: new LoopbackOnlyNetwork(),
    log: createLogger('bench'),
  });
  const recs: SandboxRecord[] = [];
  const rows: string[] = [];
  const results: Record<number, { rss: number; pss: number }> = {};
  try {
    for (const target of STEPS) {
      while (recs.length < target) {
        const i = recs.length;
        recs.push(
          await rt.create(
            Sandbox.parse({
              apiVersion: 'sandpit.dev/v1alpha1',
              kind: 'Sandbox',
              metadata: { namespace: 'bench', name: `idle-${i}`, uid: `idle-${i}-${process.pid}` },
              spec: {
                restartPolicy: 'Never',
                terminationGracePeriodSeconds: 0,
                network: { mode: 'None' },
                containers: [{ name: 'main', image: `dir:${join(TMP, 'rootfs')}`, command: ['/bin/sleep', '36000'] }],
              },
            }),
          ),
        );
      }
      await new Promise((r) => setTimeout(r, 1000));
      results[target] = perSandbox(recs);
      rows.push(
        `${target} sandboxes: RSS ${results[target]!.rss.toFixed(0)} KiB, PSS ${results[target]!.pss.toFixed(0)} KiB per sandbox`,
      );
      console.log(rows[rows.length - 1]);
    }
    const agent = memKiB(process.pid);
    const last = STEPS[STEPS.length - 1]!;
    writeFileSync(
      join(RESULTS, 'runtime-rss.json'),
      `${JSON.stringify(
        {
          name: 'runtime-rss',
          metric: `host RSS kept per idle sandbox (PID 1 + shim, both sandpit-init), at ${last} sandboxes`,
          unit: 'KiB',
          ours: Math.round(results[last]!.rss),
          peer: 'target from the issue (2 MiB); catatonit + busybox sh shim, measured before, 2389',
          theirs: 2048,
          ratio: Math.round((results[last]!.rss / 2048) * 100) / 100,
          command: 'node dist/bench/runtime-rss.js',
          note: `${rows.join('; ')}; the agent itself (one Node process for all sandboxes) RSS ${Math.round(agent.rss / 1024)} MiB`,
          date: new Date().toISOString(),
        },
        null,
        2,
      )}\n`,
    );
  } finally {
    for (const r of recs) await rt.delete(r.id);
    await rt.close();
    await rt.cgroups.removeParent({ step: 'bench cleanup' });
  }
  setImmediate(() => process.exit(0));
}

void main();
