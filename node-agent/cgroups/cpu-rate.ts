/*
 * status.usage.cpu as `kubectl top` means it: an average rate in millicores over
 * a sampling interval, from the cgroup's cumulative CPU time. Pure: the caller
 * passes the readings and the clock.
 */

/** Millicores used by `cpuDeltaNs` of CPU time over `elapsedNs` of wall time. */
export function millicores(cpuDeltaNs: number, elapsedNs: number): number {
  return elapsedNs > 0 ? Math.max(0, Math.round((cpuDeltaNs / elapsedNs) * 1000)) : 0;
}

/** The reading a rate is counted from, and the rate last reported. */
export interface CpuRateState {
  cpuNanos: number;
  atMs: number;
  millicores: number;
}

/** Shorter intervals than this report the previous rate again (a burst of status writes must not measure noise). */
export const MIN_INTERVAL_MS = 2_000;

/**
 * The next rate from a reading of the cumulative counter at `nowMs`. Without a
 * previous reading (a new sandbox, or an agent that restarted) the rate is the
 * average since the sandbox started (`startMs`, counter 0 there). A counter
 * that went backwards (a recreated cgroup) counts from its new value.
 */
export function nextCpuRate(
  prev: CpuRateState | undefined,
  cpuNanos: number,
  nowMs: number,
  startMs: number,
): CpuRateState {
  const from = prev ?? { cpuNanos: 0, atMs: startMs, millicores: 0 };
  if (prev && nowMs - prev.atMs < MIN_INTERVAL_MS) return prev;
  const delta = cpuNanos >= from.cpuNanos ? cpuNanos - from.cpuNanos : cpuNanos;
  return { cpuNanos, atMs: nowMs, millicores: millicores(delta, (nowMs - from.atMs) * 1e6) };
}

/** One state per sandbox, for the runtime's status(). */
export class CpuRates {
  readonly #states = new Map<string, CpuRateState>();

  /** The rate as a quantity ("250m"). */
  sample(id: string, cpuNanos: number, nowMs: number, startMs: number): string {
    const next = nextCpuRate(this.#states.get(id), cpuNanos, nowMs, startMs);
    this.#states.set(id, next);
    return `${next.millicores}m`;
  }

  forget(id: string): void {
    this.#states.delete(id);
  }
}
