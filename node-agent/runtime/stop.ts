import { containerCgroup } from '../cgroups/paths.js';
import { describeSandbox } from '../contracts.js';
import { childrenOf } from '../process/pidinfo.js';
import { kill, reapChild } from '../sys/proc.js';
import { containerKey, type RuntimeContext } from './context.js';
import type { ContainerRecord, SandboxRecord } from './record.js';
import { checkExit } from './supervise.js';
import { waitUntil } from './wait.js';

/*
 * The end of runs and sandboxes: a stop (SIGTERM to each workload, SIGKILL
 * to its whole cgroup after the grace period, exits recorded as usual), and
 * a teardown that removes everything the sandbox had on the node, in the
 * reverse order of its create. A wait that gives up is logged: what follows
 * still runs, and the log says what it ran over.
 */

type Site = { sandbox: string; step: string };

/**
 * Stops every container, last first. Nothing restarts afterwards. The
 * sandbox itself (PID 1, cgroups, state) stays.
 */
export async function stopSandbox(ctx: RuntimeContext, rec: SandboxRecord, graceSeconds?: number): Promise<void> {
  const { cgroups } = ctx.deps;
  const who = describeSandbox(rec.ref);
  const log = ctx.log(rec);
  rec.stopping = true;
  for (const c of rec.containers) delete c.restartAt;
  // A restart already under way finishes first; a new one cannot start (stopping is set).
  if (!(await waitUntil(() => !ctx.busy.has(rec.id), 30_000)))
    log.warn({ step: 'stop' }, 'a create or restart still works on the sandbox after 30 s; stopping anyway');
  if (cgroups.frozen(rec.id)) cgroups.freeze(rec.id, false, { sandbox: who, step: 'thaw for stop' });
  const grace = (graceSeconds ?? rec.spec.terminationGracePeriodSeconds) * 1000;
  const signalled = new Set<string>();
  // A shim that has not forked its workload yet is signalled as soon as it has.
  const terminate = () => {
    for (const c of [...rec.containers].reverse()) {
      if (c.pid === undefined || signalled.has(c.name)) continue;
      const w = childrenOf(c.pid)[0];
      if (w === undefined) continue;
      kill(w, 15, { sandbox: who, step: `stop container ${c.name}` });
      signalled.add(c.name);
    }
  };
  const running = () => rec.containers.filter((c) => c.pid !== undefined);
  const deadline = Date.now() + grace;
  while (Date.now() < deadline && running().length) {
    terminate();
    ctx.poll();
    await new Promise((r) => setTimeout(r, 5));
  }
  for (const c of running())
    await cgroups.killAll(containerCgroup(rec.id, c.name), { sandbox: who, step: `kill container ${c.name}` });
  const exited = await waitUntil(() => {
    for (const c of running()) checkExit(ctx, rec, c);
    return running().length === 0;
  }, 10_000);
  if (!exited)
    log.warn(
      { step: 'stop', containers: running().map((c) => c.name) },
      'containers killed 10 s ago have not exited; their exit is recorded when they do',
    );
  ctx.save(rec);
}

/** Stops one container's run for good (its exit is recorded, nothing restarts) and removes its cgroup. */
export async function stopContainerRun(
  ctx: RuntimeContext,
  rec: SandboxRecord,
  c: ContainerRecord,
  graceMs: number,
  site: Site,
): Promise<void> {
  const { cgroups } = ctx.deps;
  const cgRel = containerCgroup(rec.id, c.name);
  const key = containerKey(rec, c);
  delete c.restartAt;
  ctx.replacing.add(key);
  try {
    const deadline = Date.now() + graceMs;
    let signalled = false;
    while (c.pid !== undefined && Date.now() < deadline) {
      const w = childrenOf(c.pid)[0];
      if (!signalled && w !== undefined) {
        kill(w, 15, site);
        signalled = true;
      }
      checkExit(ctx, rec, c);
      await new Promise((r) => setTimeout(r, 5));
    }
    if (c.pid !== undefined) await cgroups.killAll(cgRel, site);
    const exited = await waitUntil(() => {
      if (c.pid !== undefined) checkExit(ctx, rec, c);
      return c.pid === undefined;
    }, 10_000);
    if (!exited) ctx.log(rec).warn({ ...site, container: c.name }, 'the killed run has not exited after 10 s');
    for (const pid of ctx.zombies) if (reapChild(pid, site) !== null) ctx.zombies.delete(pid);
    await cgroups.killAll(cgRel, site);
    // The exit's own cgroup sweep (supervise.ts) polls every 5 ms: let it see the cgroup empty before a new run appears in it.
    await new Promise((r) => setTimeout(r, 20));
    await cgroups.remove(cgRel, site);
  } finally {
    ctx.replacing.delete(key);
  }
}

/** Stops containers and removes everything. Idempotent. */
export async function deleteSandbox(ctx: RuntimeContext, rec: SandboxRecord): Promise<void> {
  await ctx.expiring.get(rec.id); // a deadline stop under way finishes first
  await stopSandbox(ctx, rec);
  rec.phase = 'Deleting';
  ctx.save(rec);
  await teardown(ctx, rec);
}

/**
 * Removes what the sandbox has on the node, whatever state it is in (also
 * what a create that failed half-way built): processes, logs, network,
 * images' hold, mounts, cgroups, state.
 */
export async function teardown(ctx: RuntimeContext, rec: SandboxRecord): Promise<void> {
  const { cgroups, store, network, images } = ctx.deps;
  const who = describeSandbox(rec.ref);
  const log = ctx.log(rec);
  ctx.sandboxes.delete(rec.id);
  ctx.cpuRates.forget(rec.id);
  for (const c of rec.containers) {
    const key = containerKey(rec, c);
    await ctx.logs.get(key)?.close();
    ctx.logs.delete(key);
  }
  await cgroups.killAll(rec.id, { sandbox: who, step: 'kill sandbox processes' });
  // PID 1 cannot finish exiting while any process of its namespace is an
  // unreaped zombie, and the shims are our children: reap them first.
  const shims = rec.containers.flatMap((c) => [c.pid, c.pidnsInit].filter((p): p is number => p !== undefined));
  const pending = new Set(rec.pid1 ? [rec.pid1.pid, ...shims] : shims);
  const reaped = await waitUntil(() => {
    for (const pid of pending) if (reapChild(pid, { sandbox: who, step: 'reap' }) !== null) pending.delete(pid);
    return pending.size === 0;
  }, 10_000);
  if (!reaped)
    log.warn({ step: 'teardown', pids: [...pending] }, 'processes killed 10 s ago are not reaped; removing the rest');
  await network.teardown(rec.ref, log);
  await images.release(rec.id);
  ctx.deps.mounts.detachUnder(store.sandboxDir(rec.id), { sandbox: who, step: 'teardown' });
  await cgroups.remove(rec.id, { sandbox: who, step: 'remove cgroups' });
  store.remove(rec.id);
}
