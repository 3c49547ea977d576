import type { ContainerStatus } from './backend.js';
import { StreamRefusal } from './refusal.js';

/*
 * Which lines of a container's CRI log a request wants. One file per
 * container spans restarts, so a run is a time window: the current run
 * starts at state.running.startedAt, the previous one is lastState's
 * [startedAt, next run's start). Pure, so the rules are unit-tested.
 */

export interface CriLine {
  time: string;
  stream: 'stdout' | 'stderr';
  /** P: the line continues in the next record. */
  partial: boolean;
  text: string;
}

export function parseCriLine(line: string): CriLine | undefined {
  const m = /^(\S+) (stdout|stderr) ([PF]) (.*)$/s.exec(line);
  if (!m) return undefined;
  return { time: m[1]!, stream: m[2] as 'stdout' | 'stderr', partial: m[3] === 'P', text: m[4]! };
}

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

/** A time window [from, to) of RFC 3339 strings compared as instants; open ends are undefined. */
export interface Window {
  from?: number;
  to?: number;
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

export function inWindow(line: CriLine, w: Window): boolean {
  const t = Date.parse(line.time);
  // Entry timestamps have sub-millisecond digits; compare at millisecond precision, inclusive of the start.
  return (w.from === undefined || t >= Math.floor(w.from)) && (w.to === undefined || t < w.to);
}

/** Turns records into the bytes the client sees: partial records joined, optional timestamps. */
export function renderLines(lines: CriLine[], timestamps: boolean): string {
  let out = '';
  let continuing = false;
  for (const l of lines) {
    if (timestamps && !continuing) out += `${l.time} `;
    out += l.text;
    if (!l.partial) out += '\n';
    continuing = l.partial;
  }
  return out;
}

/** The last `n` complete lines (a partial record belongs to the line it continues). */
export function tailLines(lines: CriLine[], n: number): CriLine[] {
  if (n === 0) return [];
  let complete = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i]!.partial) continue;
    complete++;
    if (complete > n) return lines.slice(i + 1);
  }
  return lines;
}
