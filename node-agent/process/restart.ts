/* Restart decisions, pure. */

export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';

export function shouldRestart(policy: RestartPolicy, exitCode: number): boolean {
  return policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
}

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

/** Kubernetes-style back-off for the `step`-th restart in a row: base, doubled per step, capped. */
export function restartDelay(step: number, opts: BackoffOptions): number {
  return Math.min(opts.maxMs, opts.baseMs * 2 ** Math.max(0, step));
}

/**
 * The back-off after a container's exit, as kubelet's (client-go flowcontrol.Backoff):
 * a run longer than twice the cap (10 minutes with kubelet's 5-minute cap) was a good
 * one and the back-off starts over at the base; otherwise it goes on from `step`.
 * Returns the step this delay used (the caller counts it up when it restarts).
 */
export function backoffAfterExit(step: number, ranMs: number, opts: BackoffOptions): { step: number; delayMs: number } {
  const s = ranMs > 2 * opts.maxMs ? 0 : step;
  return { step: s, delayMs: restartDelay(s, opts) };
}
