/* Restart decisions, pure. */

export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';

export function shouldRestart(policy: RestartPolicy, exitCode: number): boolean {
  return policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
}

/** Kubernetes-style back-off: base, doubled per restart, capped; reset after a long good run. */
export function restartDelay(restartCount: number, opts: { baseMs: number; maxMs: number }): number {
  return Math.min(opts.maxMs, opts.baseMs * 2 ** Math.max(0, restartCount));
}
