/**
 * Polls `done` every 10 ms until it holds or `timeoutMs` passes. Returns
 * whether it held: a caller that gives up says so, so a stop or teardown that
 * went on without its condition leaves a trace in the log.
 */
export async function waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (done()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Test hook: SANDPIT_FAULT=<point> SIGKILLs the agent there, to prove crash recovery. */
export function faultPoint(point: string): void {
  if (process.env.SANDPIT_FAULT === point) process.kill(process.pid, 'SIGKILL');
}
