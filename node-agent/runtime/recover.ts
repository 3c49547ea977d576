import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describeSandbox } from '../contracts.js';
import { isSameProcess } from '../process/pidinfo.js';
import { readJson } from '../state/store.js';
import { close, pidfdGetfd, pidfdOpen } from '../sys/proc.js';
import { containerKey, type RuntimeContext } from './context.js';
import type { ContainerRecord, SandboxRecord } from './record.js';
import { attachLogs } from './start-container.js';
import { teardown } from './stop.js';
import { checkExit } from './supervise.js';

/*
 * What a starting agent finds on the node: sandboxes whose PID 1 still runs
 * are re-adopted (their containers never depended on the agent); records of
 * sandboxes half built, half deleted or dead are torn down; cgroups and
 * mounts no record explains are removed.
 */

export async function recoverSandboxes(ctx: RuntimeContext): Promise<void> {
  const { store, cgroups } = ctx.deps;
  const log = ctx.deps.log;
  const known = new Set<string>();
  for (const id of store.list()) {
    const rec = readJson<SandboxRecord>(join(store.sandboxDir(id), 'sandbox.json'));
    if (!rec) {
      log.warn({ id, step: 'recover' }, 'state dir without a record: removing');
      await cleanOrphan(ctx, id);
      continue;
    }
    if (
      rec.phase === 'Creating' ||
      rec.phase === 'Deleting' ||
      !rec.pid1 ||
      !isSameProcess(rec.pid1.pid, rec.pid1.startTime)
    ) {
      log.warn({ id, phase: rec.phase, step: 'recover' }, 'half-built, half-deleted or dead sandbox: tearing down');
      await teardown(ctx, rec).catch((err: unknown) =>
        log.error({ err, id, step: 'recover' }, 'teardown during recovery failed'),
      );
      continue;
    }
    known.add(id);
    ctx.sandboxes.set(id, rec);
    for (const c of rec.containers) {
      attachLogs(ctx, rec, c.name);
      if (c.pid !== undefined && c.ptyFd !== undefined) reattachTerminal(ctx, rec, c);
      if (c.pid !== undefined) checkExit(ctx, rec, c);
    }
    ctx.save(rec);
    log.info({ id, step: 'recover' }, 're-adopted running sandbox');
  }
  for (const id of cgroups.listSandboxes()) if (!known.has(id)) await cleanOrphan(ctx, id);
  for (const m of ctx.deps.mounts.under(store.root)) {
    const id = m.slice(store.root.length + 1).split('/')[0]!;
    if (!known.has(id)) ctx.deps.mounts.detachUnder(m, { step: 'unmount orphan' });
  }
}

/**
 * A tty container's terminal is held by its shim; after an agent restart the
 * log takes the master end back from it (what the workload wrote meanwhile
 * waited in the terminal). Without it the log only misses output: the
 * container keeps running either way.
 */
function reattachTerminal(ctx: RuntimeContext, rec: SandboxRecord, c: ContainerRecord): void {
  const site = { sandbox: describeSandbox(rec.ref), step: `reattach the terminal of ${c.name}` };
  if (!isSameProcess(c.pid!, c.startTime ?? 0)) return;
  let pidfd: number | undefined;
  try {
    pidfd = pidfdOpen(c.pid!, site);
    const master = pidfdGetfd(pidfd, c.ptyFd!, site);
    ctx.logs.get(containerKey(rec, c))!.attachTerminal(master);
  } catch (err) {
    ctx
      .log(rec)
      .warn(
        { err, ...site, container: c.name },
        "cannot take the terminal back from the shim; this run's further output is not logged",
      );
  } finally {
    if (pidfd !== undefined) close(pidfd);
  }
}

/** A sandbox id with a cgroup, mounts or a state dir but no record: all of it goes. */
async function cleanOrphan(ctx: RuntimeContext, id: string): Promise<void> {
  const { cgroups, store } = ctx.deps;
  const site = { sandbox: id, step: 'clean orphan' };
  if (cgroups.exists(id)) {
    await cgroups.killAll(id, site);
    await cgroups.remove(id, site);
  }
  ctx.deps.mounts.detachUnder(store.sandboxDir(id), site);
  if (existsSync(store.sandboxDir(id))) store.remove(id);
}
