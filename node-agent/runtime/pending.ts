import type { Sandbox } from '../../crds/sandbox.js';
import type { SandboxObservation } from '../contracts.js';

/** A sandbox the agent accepted whose create has not succeeded yet. */
export interface Pending {
  /** The Sandbox asked for last: the work creates this one. */
  sandbox: Sandbox;
  /** Failed attempts at this generation (the back-off grows with them). */
  failures: number;
  /** What get/list answer meanwhile: ContainerCreating, or the last failure. */
  obs: SandboxObservation;
  /** The background work, while it runs. */
  worker?: Promise<void>;
  /** Set by remove: the work stops after the attempt under way. */
  cancelled: boolean;
  /** Set once created: the entry goes. */
  done?: boolean;
  /** Ends a back-off wait early (a new generation, a removal). */
  wake: () => void;
}

/** Waits `ms`, or until apply or remove wakes the work; `at` runs once on the way. */
export function sleepOrWake(p: Pick<Pending, 'wake'>, ms: number, at?: [number, () => void]): Promise<void> {
  return new Promise((resolve) => {
    const timers = [setTimeout(done, ms)];
    if (at)
      timers.push(
        setTimeout(() => {
          if (p.wake === done) at[1]();
        }, at[0]),
      );
    for (const t of timers) t.unref();
    function done() {
      for (const t of timers) clearTimeout(t);
      p.wake = () => undefined;
      resolve();
    }
    p.wake = done;
  });
}
