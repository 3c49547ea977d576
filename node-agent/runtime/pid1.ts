import { writeSync } from 'node:fs';
import { SandpitError } from '../../lib/errors.js';
import { pid1Cgroup } from '../cgroups/paths.js';
import { describeSandbox } from '../contracts.js';
import { pid1Argv } from '../namespaces/pid1-argv.js';
import type { LaunchResult } from '../namespaces/plans.js';
import { awaitReady, WarmPid1Pool, type WarmPid1 } from '../namespaces/warm-pid1.js';
import { processStartTime } from '../process/pidinfo.js';
import { close, open, O_CLOEXEC, O_WRONLY, reapChild } from '../sys/proc.js';
import type { RuntimeContext } from './context.js';
import type { SandboxRecord } from './record.js';
import { waitUntil } from './wait.js';

/*
 * The sandbox's PID 1 (sandpit-init): it holds the pid/net/ipc/uts namespaces
 * every container joins and reaps what is orphaned in them. A warm one (made
 * ahead of time) is claimed when there is one; otherwise one is started cold.
 */

/** Gives the sandbox its PID 1 and records it. */
export async function startPid1(ctx: RuntimeContext, rec: SandboxRecord): Promise<void> {
  const who = describeSandbox(rec.ref);
  const { cgroups } = ctx.deps;
  const warm = ctx.warm.take();
  if (warm) {
    try {
      await claimWarmPid1(ctx, rec, warm);
      return;
    } catch (err) {
      const log = ctx.log(rec);
      log.warn({ err, step: 'claim warm PID 1' }, 'warm PID 1 unusable; starting one cold');
      await cgroups.killAll(rec.id, { sandbox: who, step: 'kill unusable warm PID 1' });
      const reaped = await waitUntil(
        () => reapChild(warm.pid, { sandbox: who, step: 'reap warm PID 1' }) !== null,
        5000,
      );
      if (!reaped) log.warn({ step: 'reap warm PID 1', pid: warm.pid }, 'the unusable warm PID 1 did not exit in 5 s');
      delete rec.pid1;
    }
  }
  await startColdPid1(ctx, rec);
}

async function startColdPid1(ctx: RuntimeContext, rec: SandboxRecord): Promise<void> {
  const who = describeSandbox(rec.ref);
  const { cgroups, launchers } = ctx.deps;
  const sandboxFds = cgroups.openProcs(rec.id, { sandbox: who, step: 'open sandbox cgroup' });
  const pid1Fds = cgroups.openLeafProcs(pid1Cgroup(rec.id), { sandbox: who, step: 'open PID 1 cgroup' });
  const devnull = open('/dev/null', O_WRONLY | O_CLOEXEC, 0, { sandbox: who, step: 'open /dev/null' });
  const childSandbox = sandboxFds.map((_, i) => 3 + i);
  const childPid1 = pid1Fds.map((_, i) => 3 + sandboxFds.length + i);
  const readyFd = 3 + sandboxFds.length + pid1Fds.length;
  const { file, argv } = pid1Argv(ctx.config.binaries, childSandbox, childPid1, readyFd);
  let result: LaunchResult;
  try {
    result = await launchers.launch({
      kind: 'pid1',
      sandbox: who,
      hostname: rec.hostname,
      file,
      argv,
      extraFds: [...sandboxFds, ...pid1Fds],
      readyFd,
      log: devnull,
    });
  } finally {
    for (const fd of [...sandboxFds, ...pid1Fds, devnull]) close(fd);
  }
  if (result.error) throw new SandpitError(result.error);
  rec.pid1 = { pid: result.pid!, startTime: processStartTime(result.pid!) ?? 0 };
  ctx.save(rec);
}

/**
 * A warm PID 1 already has its pid/net/ipc/uts namespaces: move it into the
 * sandbox cgroup (so the cgroup namespace it makes is rooted there), send the
 * hostname, wait for ready, then move it into its leaf cgroup.
 */
async function claimWarmPid1(ctx: RuntimeContext, rec: SandboxRecord, warm: WarmPid1): Promise<void> {
  const who = describeSandbox(rec.ref);
  const site = (step: string) => ({ sandbox: who, step });
  const { cgroups } = ctx.deps;
  try {
    rec.pid1 = { pid: warm.pid, startTime: processStartTime(warm.pid) ?? 0 };
    ctx.save(rec); // from here a crash finds PID 1 in the record and tears it down
    cgroups.movePid(rec.id, warm.pid, site('move warm PID 1 into the sandbox cgroup'));
    writeSync(warm.go, `${rec.hostname}\n`);
    await awaitReady(warm.ready, site('wait for warm PID 1'));
    cgroups.moveLeafPid(pid1Cgroup(rec.id), warm.pid, site('move PID 1 into its leaf cgroup'));
  } finally {
    WarmPid1Pool.discard(warm);
  }
}
