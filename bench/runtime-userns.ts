import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Sandbox } from '../crds/sandbox.js';
import { createLogger } from '../lib/log.js';
import { defaultConfig } from '../node-agent/runtime/config.js';
import { DirectoryImageProvider } from '../node-agent/runtime/directory-image.js';
import { LoopbackOnlyNetwork } from '../node-agent/runtime/none-network.js';
import { SandboxSupervisor } from '../node-agent/runtime/supervisor.js';
import { nodeEffects } from '../node-agent/runtime/deps.js';
import { buildBusyboxRootfs } from '../test/fixtures/busybox-rootfs.js';

/*
 * What a user namespace costs at create: create-to-running p50 of a sandbox
 * running sleep with hostUsers: false, against `runc run --detach` of the
 * same rootfs with a user namespace of 65536 ids, and against our own
 * hostUsers: true create, interleaved in one run. runc maps the ids but does
 * not idmap the rootfs (containerd does that before it calls runc), so its
 * number leaves that part out while ours includes it: one short-lived
 * sandpit-init, a bind mount and two mounts per layer.
 */

const ITER = Number(process.env.BENCH_ITER ?? 20);
const TMP = join(process.cwd(), 'bench/tmp/runtime-userns');
const RESULTS = join(process.cwd(), 'bench/results');
const BASE = 1 << 30;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const r2 = (x: number) => Math.round(x * 100) / 100;
const LOAD_START = loadavg()[0]!;

function runcBundle(): string {
  const dir = join(TMP, 'runc-userns');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  execFileSync('runc', ['spec'], { cwd: dir });
  type Spec = {
    root: unknown;
    process: { args: string[]; terminal: boolean };
    linux: { namespaces: { type: string }[]; uidMappings?: unknown; gidMappings?: unknown };
  };
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Spec;
  cfg.root = { path: join(TMP, 'rootfs'), readonly: true };
  cfg.process.args = ['/bin/sleep', '3600'];
  cfg.process.terminal = false;
  cfg.linux.namespaces.push({ type: 'user' });
  cfg.linux.uidMappings = [{ containerID: 0, hostID: BASE, size: 65536 }];
  cfg.linux.gidMappings = [{ containerID: 0, hostID: BASE, size: 65536 }];
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  return dir;
}

function timeCmd(args: string[], cwd: string): { ms: number; ok: boolean; err: string } {
  const t0 = performance.now();
  const r = spawnSync('runc', args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', args.includes('--detach') ? 'ignore' : 'pipe'],
  });
  return { ms: performance.now() - t0, ok: r.status === 0, err: (r.stderr ?? '').trim().split('\n').pop() ?? '' };
}

async function main(): Promise<void> {
  mkdirSync(TMP, { recursive: true });
  buildBusyboxRootfs(join(TMP, 'rootfs'));
  // runc makes its mount points as the container's root, which owns nothing of this root-owned rootfs.
  for (const d of ['proc', 'dev', 'sys']) mkdirSync(join(TMP, 'rootfs', d), { recursive: true });
  const bundle = runcBundle();
  const config = defaultConfig({ stateRoot: join(TMP, 'state'), cgroupParent: 'sandpit-bench-userns', pollMs: 50 });
  const rt = await SandboxSupervisor.start(config, {
    ...(await nodeEffects(config)),
    images: new DirectoryImageProvider(),
    network: new LoopbackOnlyNetwork(),
    log: createLogger('bench'),
  });
  const sb = (name: string, hostUsers: boolean) =>
    Sandbox.parse({
      apiVersion: 'sandpit.dev/v1alpha1',
      kind: 'Sandbox',
      metadata: { namespace: 'bench', name, uid: `${name}-${process.pid}` },
      spec: {
        hostUsers,
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 1,
        network: { mode: 'None' },
        containers: [{ name: 'main', image: `dir:${join(TMP, 'rootfs')}`, command: ['/bin/sleep', '3600'] }],
      },
    });

  const userns: number[] = [];
  const hostUsers: number[] = [];
  const runc: number[] = [];
  let runcError = '';
  for (let i = 0; i < ITER; i++) {
    for (const [own, times] of [
      [false, userns],
      [true, hostUsers],
    ] as const) {
      await new Promise((r) => setTimeout(r, 400)); // launcher threads and warm PID 1s ready, as in runtime-create
      const t0 = performance.now();
      const rec = await rt.create(sb(`${own ? 'host' : 'userns'}-${i}`, own));
      times.push(performance.now() - t0);
      await rt.delete(rec.id);
    }
    const id = `sandpit-bench-userns-${process.pid}-${i}`;
    const r = timeCmd(['run', '--detach', id], bundle);
    if (r.ok) runc.push(r.ms);
    else runcError = r.err;
    timeCmd(['delete', '--force', id], bundle);
  }
  await rt.close();
  await rt.cgroups.removeParent({ step: 'bench cleanup' });

  const p50 = pct(userns, 50);
  const theirs = runc.length ? r2(pct(runc, 50)) : null;
  const result = {
    name: 'runtime-create-userns',
    metric: 'create-to-running p50, sandbox running sleep with hostUsers: false',
    unit: 'ms',
    ours: r2(p50),
    peer: 'runc run --detach with a user namespace (rootfs not idmapped)',
    theirs,
    ratio: theirs === null ? null : r2(p50 / theirs),
    note:
      `p95 ${r2(pct(userns, 95))} ms; the same create with hostUsers: true p50 ${r2(pct(hostUsers, 50))} ms, so the user namespace adds ${r2(p50 - pct(hostUsers, 50))} ms; ` +
      `${runc.length ? `runc p95 ${r2(pct(runc, 95))} ms` : `runc failed: "${runcError}"`}; ${ITER} iterations, interleaved; load average ${LOAD_START.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end`,
    command: 'node dist/bench/runtime-userns.js',
    date: new Date().toISOString(),
  };
  writeFileSync(join(RESULTS, 'runtime-create-userns.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result));
  setImmediate(() => process.exit(0));
}

void main();
