import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SandpitError } from '../../lib/errors.js';
import { containerCgroup } from '../cgroups/paths.js';
import { describeSandbox } from '../contracts.js';
import { isSameProcess } from '../process/pidinfo.js';
import { restartDelay } from '../process/restart.js';
import { reapChild } from '../sys/proc.js';
import { containerKey, now, type RuntimeContext } from './context.js';
import type { ContainerRecord, SandboxRecord } from './record.js';
import { logPath, startContainer } from './start-container.js';
import { readLogTail, terminationLogFile, terminationMessage } from './termination-message.js';
import { inWindow } from '../process/cri-log.js';
import { stopSandbox } from './stop.js';
import { containerExited, deadlinePassed, exitStatusOf, stateAtDeadline, type ExitStatus } from './transitions.js';

/** Log lines are stamped when the agent reads them: a run's first ones can be a little older than its recorded start. */
const RUN_START_SLACK_MS = 1000;

/*
 * Supervision, the poll that runs on every SIGCHLD and every pollMs: reap
 * what ended, record exits (transitions.ts decides what they mean), restart
 * what is due, stop sandboxes past their deadline. No Node.js process or
 * timer exists per container.
 */

/** Looks for exited containers, due restarts and passed deadlines. Cheap: a few stat/read calls per running container. */
export function pollSandboxes(ctx: RuntimeContext): void {
  for (const pid of ctx.zombies) if (reapChild(pid, { step: 'reap container PID 1' }) !== null) ctx.zombies.delete(pid);
  for (const rec of ctx.sandboxes.values()) {
    if (ctx.busy.has(rec.id) || rec.phase === 'Creating' || rec.phase === 'Deleting') continue;
    if (deadlinePassed(rec, Date.now())) void expireSandbox(ctx, rec);
    for (const c of rec.containers) {
      if (c.pid !== undefined) checkExit(ctx, rec, c);
      else if (c.restartAt !== undefined && Date.now() >= c.restartAt) void restartDue(ctx, rec, c);
    }
  }
}

/** Records the run's exit if its shim is gone (reaped here, or no longer the process it was). */
export function checkExit(ctx: RuntimeContext, rec: SandboxRecord, c: ContainerRecord): void {
  const pid = c.pid!;
  // A shim of ours still running is the common case on every poll: one wait4, no file read.
  // (Until it is reaped, its status file does not matter: a written status waits for the reap,
  // so the shim is not left a zombie.)
  const reaped = reapChild(pid, { sandbox: describeSandbox(rec.ref), step: 'reap shim' });
  if (reaped === null) return;
  const exitFile = join(ctx.deps.store.containerDir(rec.id, c.name), 'exit');
  let text = '';
  try {
    text = readFileSync(exitFile, 'utf8').trim();
  } catch {
    /* not written yet */
  }
  const alive = reaped === 'not-child' && isSameProcess(pid, c.startTime!);
  if (!text && alive) return;
  let finishedAt = now();
  try {
    if (text) finishedAt = statSync(exitFile).mtime.toISOString();
  } catch {
    /* keep now */
  }
  recordExit(ctx, rec, c, exitStatusOf(text), finishedAt);
}

/** A run ended: its record says how, and whether it restarts or the sandbox ends; what it left in its cgroup is killed. */
function recordExit(
  ctx: RuntimeContext,
  rec: SandboxRecord,
  c: ContainerRecord,
  status: ExitStatus,
  finishedAt: string,
): void {
  const { cgroups } = ctx.deps;
  const cgRel = containerCgroup(rec.id, c.name);
  const outcome = containerExited(rec, c, {
    status,
    finishedAt,
    message: runMessage(ctx, rec, c, status.exitCode),
    oomKilled: cgroups.oomKills(cgRel) > c.oomBase,
    replacing: ctx.replacing.has(containerKey(rec, c)),
    nowMs: Date.now(),
    backoff: ctx.config.restartBackoff,
  });
  c.state = outcome.state;
  c.lastState = outcome.lastState;
  if (outcome.restart) {
    c.restartAt = outcome.restart.at;
    c.backoffStep = outcome.restart.backoffStep;
  }
  rec.phase = outcome.phase;
  delete c.pid;
  delete c.startTime;
  // The run's own PID 1 goes with the cgroup kill below; reap it once it has.
  if (c.pidnsInit !== undefined) ctx.zombies.add(c.pidnsInit);
  delete c.pidnsInit;
  // Whatever the workload left behind in its cgroup goes with it, as in Kubernetes.
  const site = { sandbox: describeSandbox(rec.ref), step: 'kill container leftovers' };
  void cgroups
    .killAll(cgRel, site)
    .catch((err: unknown) => ctx.log(rec).warn({ err, ...site, container: c.name }, 'cannot kill what the run left'));
  ctx.save(rec);
  const reason = (outcome.restart ? outcome.lastState : outcome.state)?.terminated?.reason;
  ctx.log(rec).info({ step: 'container exit', container: c.name, ...status, reason }, 'container exited');
}

/** The run's termination message: its file, or with FallbackToLogsOnError the end of this run's log (drained first). */
function runMessage(ctx: RuntimeContext, rec: SandboxRecord, c: ContainerRecord, exitCode: number): string | undefined {
  const spec = rec.spec.containers.find((x) => x.name === c.name);
  if (!spec) return undefined;
  const file = terminationLogFile(ctx.deps.store.containerDir(rec.id, c.name));
  // This run's lines: from a little before its start, but not back into the previous run (the middle of the gap).
  const start = c.startedAt ? Date.parse(c.startedAt) : undefined;
  const lastEnd = c.lastState?.terminated?.finishedAt ? Date.parse(c.lastState.terminated.finishedAt) : undefined;
  const from =
    start === undefined
      ? undefined
      : Math.max(
          start - RUN_START_SLACK_MS,
          lastEnd !== undefined && lastEnd < start ? (lastEnd + start) / 2 : -Infinity,
        );
  return terminationMessage(spec, exitCode, file, () => {
    ctx.logs.get(containerKey(rec, c))?.drainSync();
    return readLogTail(logPath(ctx, rec.id, c.name), (l) => inWindow(l, { from }));
  });
}

/** A restart whose back-off has passed: a new run, or the reason it could not start and the next try's time. */
async function restartDue(ctx: RuntimeContext, rec: SandboxRecord, c: ContainerRecord): Promise<void> {
  if (ctx.busy.has(rec.id) || rec.stopping) return;
  ctx.busy.add(rec.id);
  try {
    c.backoffStep = (c.backoffStep ?? c.restartCount) + 1;
    c.restartCount++;
    await startContainer(ctx, rec, c);
  } catch (err) {
    ctx.log(rec).error({ err, container: c.name, step: `restart container ${c.name}` }, 'restart failed');
    const reason = err instanceof SandpitError ? err.reason : undefined;
    if (reason !== undefined) c.state = { waiting: { reason, message: (err as Error).message } };
    c.restartAt = Date.now() + restartDelay(c.backoffStep ?? c.restartCount, ctx.config.restartBackoff);
    ctx.save(rec);
  } finally {
    ctx.busy.delete(rec.id);
  }
}

/**
 * spec.activeDeadlineSeconds, counted from the sandbox's recorded start (so
 * a restarted agent keeps counting): every container is stopped with the
 * grace period, nothing restarts, and the sandbox ends Failed with reason
 * DeadlineExceeded, as kubelet does for a pod. The reason is recorded before
 * the stop, so an agent that dies half-way finishes the job once it is back.
 */
export function expireSandbox(ctx: RuntimeContext, rec: SandboxRecord): Promise<void> {
  const running = ctx.expiring.get(rec.id);
  if (running) return running;
  const log = ctx.log(rec);
  const work = (async () => {
    rec.reason = 'DeadlineExceeded';
    rec.message = `The sandbox was active longer than its activeDeadlineSeconds (${rec.spec.activeDeadlineSeconds} s)`;
    ctx.save(rec);
    log.info(
      { step: 'active deadline', activeDeadlineSeconds: rec.spec.activeDeadlineSeconds },
      'deadline exceeded: stopping the sandbox',
    );
    await stopSandbox(ctx, rec);
    if (ctx.sandboxes.get(rec.id) !== rec || rec.phase === 'Deleting') return;
    for (const c of rec.containers) c.state = stateAtDeadline(c);
    rec.phase = 'Failed';
    ctx.save(rec);
  })()
    .catch((err: unknown) =>
      log.error(
        { err, step: 'active deadline' },
        'stopping the sandbox at its deadline failed; the next check retries',
      ),
    )
    .finally(() => ctx.expiring.delete(rec.id));
  ctx.expiring.set(rec.id, work);
  return work;
}
