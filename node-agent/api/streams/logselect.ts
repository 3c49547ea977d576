import type { Window } from '../../process/cri-log.js';
import type { ContainerStatus } from './backend.js';
import { StreamRefusal } from './refusal.js';

/*
 * Which lines of a container's CRI log a request wants. One file per
 * container spans restarts, so a run is a time window: the current run
 * starts at state.running.startedAt, the previous one is lastState's
 * [startedAt, next run's start). Pure, so the rules are unit-tested.
 */

export interface LogRequest {
  container: string;
  follow: boolean;
  previous: boolean;
  timestamps: boolean;
  tail?: number;
  sinceSeconds?: number;
}

export function parseLogQuery(container: string, q: URLSearchParams): LogRequest {
  const flag = (n: string) => ['1', 'true'].includes(q.get(n) ?? '');
  const int = (n: string) => {
    const v = q.get(n);
    if (v === null || v === '') return undefined;
    const x = Number(v);
    if (!Number.isInteger(x) || x < 0)
      throw new StreamRefusal(400, 'BadRequest', `${n} must be a non-negative integer, got "${v}"`);
    return x;
  };
  const req: LogRequest = {
    container,
    follow: flag('follow'),
    previous: flag('previous'),
    timestamps: flag('timestamps'),
  };
  const tail = int('tailLines');
  const since = int('sinceSeconds');
  if (tail !== undefined) req.tail = tail;
  if (since !== undefined) req.sinceSeconds = since;
  return req;
}

/**
 * Entry times are when the agent read the line, not when the process wrote it:
 * a run's first lines can be stamped a little before its recorded start, its
 * last ones a little after its recorded end. Runs are separated by at least
 * the restart back-off, so the boundary between two runs is the middle of
 * that gap, and a run's start gets this much slack.
 */
const START_SLACK_MS = 1000;

/** The window of the run a request asks for, or a refusal when there is no such run. */
export function runWindow(
  status: ContainerStatus | undefined,
  previous: boolean,
  sinceSeconds: number | undefined,
  now = Date.now(),
): Window {
  const at = (s: string | undefined) => (s ? Date.parse(s) : undefined);
  const last = status?.lastState?.terminated;
  const currentStart = at(status?.state?.running?.startedAt ?? status?.state?.terminated?.startedAt);
  const lastStart = at(last?.startedAt);
  const lastEnd = at(last?.finishedAt);
  const boundary =
    lastEnd !== undefined && currentStart !== undefined && currentStart > lastEnd
      ? (lastEnd + currentStart) / 2
      : currentStart;
  let w: Window;
  if (previous) {
    if (!last)
      throw new StreamRefusal(
        400,
        'BadRequest',
        `previous terminated container "${status?.name ?? '?'}" not found: it has not restarted`,
      );
    w = { from: lastStart === undefined ? undefined : lastStart - START_SLACK_MS, to: boundary };
  } else if (currentStart === undefined) {
    // Waiting to restart (CrashLoopBackOff): show the run that just ended, as kubelet keeps its log.
    w = { from: lastStart === undefined ? undefined : lastStart - START_SLACK_MS };
  } else {
    // Before any restart the whole file is this run; after one, it starts where the previous run's gap ends.
    w = { from: last ? boundary : undefined };
  }
  if (sinceSeconds !== undefined) w.from = Math.max(w.from ?? 0, now - sinceSeconds * 1000);
  return w;
}
