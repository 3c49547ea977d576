import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createLogger } from '../lib/log.js';
import type { Sandbox } from '../crds/sandbox.js';
import { dirSandbox, pct, r2 } from './runtime-lib.js';
import { buildBusyboxRootfs } from '../test/fixtures/busybox-rootfs.js';

/*
 * Create-to-running of this build against another build of sandpit (before
 * and after a change), both in this one process and interleaved, so that
 * machine load hits both alike: each build's runtime gets its own cgroup
 * parent and state root, and the two take turns creating the same sandbox
 * (/bin/sleep on a busybox dir: root, network None) and deleting it.
 *
 *   BENCH_BASELINE=/path/to/other/checkout node dist/bench/runtime-create-builds.js
 *
 * The other checkout must be built (`npm ci && npm run build`). Its runtime is
 * loaded from its dist/ by the one of the two module layouts it has (the
 * runtime as one class in runtime.js, or the folder of steps with
 * supervisor.js), so any build since the runtime got its warm PID 1s compares.
 */

const ITER = Number(process.env.BENCH_ITER ?? 30);
const TMP = join(process.cwd(), 'bench/tmp/runtime-builds');
const RESULTS = join(process.cwd(), 'bench/results');

interface Runtime {
  create(sb: Sandbox): Promise<{ id: string }>;
  delete(id: string): Promise<void>;
  close(): Promise<void>;
  cgroups: { removeParent(site: { step: string }): Promise<void> | void };
}

/** Starts the runtime of the build whose dist/ is at `dist`. */
async function startBuild(dist: string, tag: string): Promise<Runtime> {
  const mod = async <T>(path: string) => (await import(pathToFileURL(join(dist, path)).href)) as T;
  const { defaultConfig } = await mod<{ defaultConfig(o: object): object }>('node-agent/runtime/config.js');
  const { DirectoryImageProvider } = await mod<{ DirectoryImageProvider: new () => object }>(
    'node-agent/runtime/directory-image.js',
  );
  const { LoopbackOnlyNetwork } = await mod<{ LoopbackOnlyNetwork: new () => object }>(
    'node-agent/runtime/none-network.js',
  );
  const config = defaultConfig({
    stateRoot: join(TMP, `state-${tag}`),
    cgroupParent: `sandpit-bench-${tag}`,
    pollMs: 50,
  });
  const deps = {
    images: new DirectoryImageProvider(),
    network: new LoopbackOnlyNetwork(),
    log: createLogger(`bench-${tag}`),
  };
  type Start = { start(config: object, deps: object): Promise<Runtime> };
  if (existsSync(join(dist, 'node-agent/runtime/supervisor.js'))) {
    const { SandboxSupervisor } = await mod<{ SandboxSupervisor: Start }>('node-agent/runtime/supervisor.js');
    const { nodeEffects } = await mod<{ nodeEffects(c: object): Promise<object> }>('node-agent/runtime/deps.js');
    return SandboxSupervisor.start(config, { ...(await nodeEffects(config)), ...deps });
  }
  const { SandboxRuntime } = await mod<{ SandboxRuntime: Start }>('node-agent/runtime/runtime.js');
  return SandboxRuntime.start(config, deps);
}

const commit = (dir: string) => {
  try {
    return execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
};

async function main(): Promise<void> {
  const baseline = process.env.BENCH_BASELINE;
  if (!baseline) {
    console.log('runtime-create-builds: set BENCH_BASELINE to a built checkout of the other build; nothing measured');
    return;
  }
  const loadStart = loadavg()[0]!;
  rmSync(TMP, { recursive: true, force: true });
  mkdirSync(TMP, { recursive: true });
  buildBusyboxRootfs(join(TMP, 'rootfs'));
  const builds = {
    before: await startBuild(resolve(baseline, 'dist'), 'before'),
    after: await startBuild(resolve(process.cwd(), 'dist'), 'after'),
  };
  const sb = (name: string) => dirSandbox(name, join(TMP, 'rootfs'), ['/bin/sleep', '3600']);
  const ms = { before: [] as number[], after: [] as number[] };
  for (let i = 0; i < ITER; i++) {
    // Alternate which build goes first, so neither always follows the other's delete.
    const order = i % 2 ? (['after', 'before'] as const) : (['before', 'after'] as const);
    for (const which of order) {
      await new Promise((r) => setTimeout(r, 400)); // let launcher threads and warm PID 1s re-warm
      const t0 = performance.now();
      const rec = await builds[which].create(sb(`${which}-${i}`));
      ms[which].push(performance.now() - t0);
      await builds[which].delete(rec.id);
    }
  }
  for (const rt of Object.values(builds)) {
    await rt.close();
    await rt.cgroups.removeParent({ step: 'bench cleanup' });
  }
  const p50 = { before: pct(ms.before, 50), after: pct(ms.after, 50) };
  const result = {
    name: 'runtime-create-builds',
    metric: 'create-to-running p50 of this build against another build (sleep, network None)',
    unit: 'ms',
    ours: r2(p50.after),
    peer: `sandpit ${commit(baseline)} (BENCH_BASELINE)`,
    theirs: r2(p50.before),
    ratio: r2(p50.after / p50.before),
    note: `this build ${commit(process.cwd())}; p95 ${r2(pct(ms.after, 95))} vs ${r2(pct(ms.before, 95))} ms; ${ITER} iterations each, interleaved in one process; load average ${loadStart.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end`,
    command: 'BENCH_BASELINE=<built checkout> node dist/bench/runtime-create-builds.js',
    date: new Date().toISOString(),
  };
  writeFileSync(join(RESULTS, `${result.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result));
  setImmediate(() => process.exit(0));
}

void main();
