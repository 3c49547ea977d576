import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../lib/log.js';
import { defaultConfig } from '../node-agent/runtime/config.js';
import { DirectoryImageProvider } from '../node-agent/runtime/directory-image.js';
import { LoopbackOnlyNetwork } from '../node-agent/runtime/none-network.js';
import { SandboxSupervisor } from '../node-agent/runtime/supervisor.js';
import { nodeEffects } from '../node-agent/runtime/deps.js';
import { dirSandbox, pct, r2 } from './runtime-lib.js';
import { buildBusyboxRootfs } from '../test/fixtures/busybox-rootfs.js';

/*
 * Create-to-running and delete latency of a sandbox, against `runc run` and
 * `crun run` on the same busybox rootfs, interleaved in the same run so that
 * machine load hits all of them alike. "Running" means the workload process
 * exists (sandpit: create() resolved; runc/crun: `run --detach` returned).
 * For /bin/true, runc's number is the whole `runc run` (create+start+wait+
 * delete of a process that exits at once); ours is create() of the sandbox.
 * Each of our creates is preceded by a 400 ms pause so that the
 * launcher threads and warm PID 1s are ready: the steady state of a node that
 * is not creating sandboxes back to back (back to back, each create also pays
 * a worker thread's start-up, 50-200 ms of CPU).
 */

const ITER = Number(process.env.BENCH_ITER ?? 30);
const TMP = join(process.cwd(), 'bench/tmp/runtime');
const RESULTS = join(process.cwd(), 'bench/results');

/** 1-minute load averages at the start and the end: other suites share these two cores. */
const LOAD_START = loadavg()[0]!;
const load = () => `${LOAD_START.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end`;

function bundle(runtime: string, args: string[]): string {
  const dir = join(TMP, `${runtime}-${args[0]!.replace(/\//g, '_')}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  execFileSync('runc', ['spec'], { cwd: dir });
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as {
    root: unknown;
    process: { args: string[]; terminal: boolean };
  };
  cfg.root = { path: join(TMP, 'rootfs'), readonly: true };
  cfg.process.args = args;
  cfg.process.terminal = false;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  return dir;
}

function timeCmd(cmd: string, args: string[], cwd: string): { ms: number; ok: boolean; err: string } {
  const t0 = performance.now();
  // A detached container inherits our stdio: a pipe there would never see EOF.
  const detached = args.includes('--detach');
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'ignore', detached ? 'ignore' : 'pipe'] });
  return { ms: performance.now() - t0, ok: r.status === 0, err: (r.stderr ?? '').trim().split('\n').pop() ?? '' };
}

async function main(): Promise<void> {
  mkdirSync(TMP, { recursive: true });
  buildBusyboxRootfs(join(TMP, 'rootfs'));
  const sleepy = (rt: string) => bundle(rt, ['/bin/sleep', '3600']);
  const trueBundle = bundle('oci', ['/bin/true']);
  const sleepBundle = sleepy('oci');

  const config = defaultConfig({ stateRoot: join(TMP, 'state'), cgroupParent: 'sandpit-bench', pollMs: 50 });
  const rt = await SandboxSupervisor.start(config, {
    ...(await nodeEffects(config)),
    images: new DirectoryImageProvider(),
    network: new LoopbackOnlyNetwork(),
    log: createLogger('bench'),
  });
  const sb = (name: string, command: string[]) => dirSandbox(name, join(TMP, 'rootfs'), command);

  const ours = { trueCreate: [] as number[], sleepCreate: [] as number[], sleepDelete: [] as number[] };
  const runc = { trueRun: [] as number[], sleepCreate: [] as number[], sleepDelete: [] as number[] };
  const crun = { trueRun: [] as number[], error: '' };
  for (let i = 0; i < ITER; i++) {
    await new Promise((r) => setTimeout(r, 400)); // let the launcher pool re-warm

    let t0 = performance.now();
    const a = await rt.create(sb(`true-${i}`, ['/bin/true']));
    ours.trueCreate.push(performance.now() - t0);
    await rt.delete(a.id);
    await new Promise((r) => setTimeout(r, 400)); // the same spacing before each create

    t0 = performance.now();
    const b = await rt.create(sb(`sleep-${i}`, ['/bin/sleep', '3600']));
    ours.sleepCreate.push(performance.now() - t0);
    t0 = performance.now();
    await rt.delete(b.id);
    ours.sleepDelete.push(performance.now() - t0);

    const id = `sandpit-bench-${process.pid}-${i}`;
    const rr = timeCmd('runc', ['run', `${id}-t`], trueBundle);
    if (rr.ok) runc.trueRun.push(rr.ms);
    const rc = timeCmd('runc', ['run', '--detach', `${id}-s`], sleepBundle);
    if (rc.ok) runc.sleepCreate.push(rc.ms);
    const rd = timeCmd('runc', ['delete', '--force', `${id}-s`], sleepBundle);
    if (rd.ok) runc.sleepDelete.push(rd.ms);

    const cr = timeCmd('crun', ['run', `${id}-c`], trueBundle);
    if (cr.ok) crun.trueRun.push(cr.ms);
    else {
      crun.error = cr.err;
      spawnSync('crun', ['delete', '--force', `${id}-c`]);
    }
  }
  await rt.close();

  const date = new Date().toISOString();
  const command = 'node dist/bench/runtime-create.js';
  const write = (name: string, r: Record<string, unknown>) =>
    writeFileSync(join(RESULTS, `${name}.json`), `${JSON.stringify({ name, ...r, command, date }, null, 2)}\n`);
  const crunNote = crun.trueRun.length
    ? `crun run /bin/true p50 ${r2(pct(crun.trueRun, 50))} ms`
    : `crun cannot run here: "${crun.error}" (hybrid cgroup layout)`;
  write('runtime-create-true', {
    metric: 'create-to-running p50, sandbox running /bin/true',
    unit: 'ms',
    ours: r2(pct(ours.trueCreate, 50)),
    peer: 'runc run (same rootfs)',
    theirs: r2(pct(runc.trueRun, 50)),
    ratio: r2(pct(ours.trueCreate, 50) / pct(runc.trueRun, 50)),
    note: `p95 ${r2(pct(ours.trueCreate, 95))} vs runc ${r2(pct(runc.trueRun, 95))} ms; ${crunNote}; ${ITER} iterations, interleaved; load average ${load()}`,
  });
  write('runtime-create-long', {
    metric: 'create-to-running p50, sandbox running sleep',
    unit: 'ms',
    ours: r2(pct(ours.sleepCreate, 50)),
    peer: 'runc run --detach',
    theirs: r2(pct(runc.sleepCreate, 50)),
    ratio: r2(pct(ours.sleepCreate, 50) / pct(runc.sleepCreate, 50)),
    note: `p95 ${r2(pct(ours.sleepCreate, 95))} vs runc ${r2(pct(runc.sleepCreate, 95))} ms; ${ITER} iterations; load average ${load()}`,
  });
  write('runtime-delete', {
    metric: 'delete p50 of a running sandbox (SIGTERM, wait, teardown)',
    unit: 'ms',
    ours: r2(pct(ours.sleepDelete, 50)),
    peer: 'runc delete --force',
    theirs: r2(pct(runc.sleepDelete, 50)),
    ratio: r2(pct(ours.sleepDelete, 50) / pct(runc.sleepDelete, 50)),
    note: `p95 ${r2(pct(ours.sleepDelete, 95))} vs runc ${r2(pct(runc.sleepDelete, 95))} ms; load average ${load()}`,
  });
  console.log(
    JSON.stringify({
      ours: Object.fromEntries(Object.entries(ours).map(([k, v]) => [k, [r2(pct(v, 50)), r2(pct(v, 95))]])),
      runc: Object.fromEntries(Object.entries(runc).map(([k, v]) => [k, [r2(pct(v, 50)), r2(pct(v, 95))]])),
      crun: crunNote,
    }),
  );
  await rt.cgroups.removeParent({ step: 'bench cleanup' });
  setImmediate(() => process.exit(0));
}

void main();
