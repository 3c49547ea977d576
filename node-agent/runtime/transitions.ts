import type { SandboxStatus } from '../../crds/sandbox.js';
import { backoffAfterExit, shouldRestart, type BackoffOptions } from '../process/restart.js';
import { decodeShellStatus } from '../process/shim.js';
import type { ContainerRecord, ContainerStateValue, Phase, SandboxRecord } from './record.js';

/*
 * The runtime's decisions, pure: what a container's exit means for it and for
 * its sandbox (restart with back-off, or a final phase), when a deadline has
 * passed, and how a record reads as status. The supervisor does the I/O
 * around them (reaping, cgroup kills, saving the record).
 */

export interface ExitStatus {
  exitCode: number;
  signal?: number;
}

/**
 * The exit a shim's status file says, or, with no status written, the shim
 * itself was killed (by us, or with the whole cgroup): SIGKILL.
 */
export function exitStatusOf(statusFile: string): ExitStatus {
  return statusFile ? decodeShellStatus(Number(statusFile)) : { exitCode: 137, signal: 9 };
}

/** The terminated reason kubelet gives a run that ended so. */
export function exitReason(exit: { exitCode: number; oomKilled: boolean; deadlineExceeded: boolean }): string {
  if (exit.oomKilled) return 'OOMKilled';
  if (exit.deadlineExceeded) return 'DeadlineExceeded';
  return exit.exitCode === 0 ? 'Completed' : 'Error';
}

export interface ExitFacts {
  status: ExitStatus;
  finishedAt: string;
  /** The OOM killer struck in the run's cgroup since it started. */
  oomKilled: boolean;
  /** The run is being replaced by a new definition (restartContainer): its exit neither restarts nor ends anything. */
  replacing: boolean;
  nowMs: number;
  backoff: BackoffOptions;
  /** The run's termination message (termination-message.ts), for state.terminated.message. */
  message?: string;
}

/** A container's record after its run ended, and the sandbox's phase after that. */
export interface ExitOutcome {
  state: ContainerStateValue;
  lastState: ContainerStateValue | undefined;
  /** Set when the container restarts: when, and the back-off step that delay used. */
  restart?: { at: number; backoffStep: number };
  phase: Phase;
}

/**
 * What a run's end means, as kubelet decides it for a Pod: restarted after a
 * back-off when the restart policy says so and the sandbox runs on; otherwise
 * the run stays terminated, and once every container is, the sandbox ends
 * Succeeded (all exited 0, no deadline) or Failed.
 */
export function containerExited(rec: SandboxRecord, c: ContainerRecord, facts: ExitFacts): ExitOutcome {
  const { status, finishedAt } = facts;
  const deadlineExceeded = rec.stopping === true && rec.reason === 'DeadlineExceeded';
  const reason = exitReason({ exitCode: status.exitCode, oomKilled: facts.oomKilled, deadlineExceeded });
  const terminated: ContainerStateValue = {
    terminated: {
      exitCode: status.exitCode,
      signal: status.signal,
      reason,
      ...(facts.message ? { message: facts.message } : {}),
      startedAt: c.startedAt,
      finishedAt,
    },
  };
  let outcome: Omit<ExitOutcome, 'phase'> = { state: terminated, lastState: c.state };
  if (
    rec.phase === 'Running' &&
    !rec.stopping &&
    !facts.replacing &&
    shouldRestart(rec.spec.restartPolicy, status.exitCode)
  ) {
    const ranMs = Date.parse(finishedAt) - Date.parse(c.startedAt ?? finishedAt);
    const backoff = backoffAfterExit(
      c.backoffStep ?? c.restartCount,
      Number.isFinite(ranMs) ? ranMs : 0,
      facts.backoff,
    );
    outcome = {
      state: { waiting: { reason: 'CrashLoopBackOff', message: `last exit ${status.exitCode} (${reason})` } },
      lastState: terminated,
      restart: { at: facts.nowMs + backoff.delayMs, backoffStep: backoff.step },
    };
  }
  const states = rec.containers.map((x) => (x === c ? outcome.state : x.state));
  let phase = rec.phase;
  if (!facts.replacing && (phase === 'Running' || phase === 'Paused') && states.every((s) => s?.terminated))
    phase = !deadlineExceeded && states.every((s) => s?.terminated?.exitCode === 0) ? 'Succeeded' : 'Failed';
  return { ...outcome, phase };
}

/** Running or paused past spec.activeDeadlineSeconds, and not stopped for another reason. */
export function deadlinePassed(rec: SandboxRecord, nowMs: number): boolean {
  const seconds = rec.spec.activeDeadlineSeconds;
  if (seconds === undefined || (rec.phase !== 'Running' && rec.phase !== 'Paused')) return false;
  if (rec.stopping && rec.reason !== 'DeadlineExceeded') return false;
  return nowMs >= Date.parse(rec.createdAt) + seconds * 1000;
}

/** A container's state once its sandbox was stopped at its deadline: one waiting to restart ends with its last exit. */
export function stateAtDeadline(c: Pick<ContainerRecord, 'state' | 'lastState'>): ContainerStateValue {
  return c.state?.waiting && c.lastState?.terminated ? c.lastState : c.state;
}

/** The waiting state of a container whose (re)start failed: the error's reason, or `fallback` for none. */
export function waitingAfterFailedStart(
  reason: string | undefined,
  message: string,
  fallback: string,
): ContainerStateValue {
  return { waiting: { reason: reason ?? fallback, message } };
}

/** A runtime phase as status.phase: a sandbox being built is Pending, one being deleted still Running. */
export function statusPhase(phase: Phase): NonNullable<SandboxStatus['phase']> {
  return phase === 'Creating' ? 'Pending' : phase === 'Deleting' ? 'Running' : phase;
}

/** The status of a sandbox from its record and the usage its cgroup reports. */
export function sandboxStatus(rec: SandboxRecord, usage: NonNullable<SandboxStatus['usage']>): SandboxStatus {
  return {
    phase: statusPhase(rec.phase),
    hostIP: rec.network?.hostIP,
    sandboxIP: rec.network?.sandboxIP,
    startTime: rec.createdAt,
    ...(rec.reason ? { reason: rec.reason } : {}),
    ...(rec.message ? { message: rec.message } : {}),
    containerStatuses: rec.containers.map((c) => ({
      name: c.name,
      image: rec.spec.containers.find((x) => x.name === c.name)?.image ?? '',
      imageID: c.imageID,
      ready: c.pid !== undefined,
      restartCount: c.restartCount,
      state: c.state,
      lastState: c.lastState,
    })),
    usage,
  };
}
