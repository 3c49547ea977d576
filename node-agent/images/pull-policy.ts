import type { PullOptions } from '../contracts.js';
import { ImageError } from './errors.js';

/*
 * The decisions around a pull that need no registry: whether the image on
 * disk serves this prepare (imagePullPolicy, a pinned digest), and the
 * kubelet-style back-off after failures, which keeps a broken image from
 * hammering the registry once per sandbox retry.
 */

/**
 * What the image on disk (`presentDigest`: the digest its reference resolved
 * to, undefined when it is not complete on disk) means under `policy`:
 * 'cached' serves it, 'pull' asks the registry, 'missing' is ErrImageNeverPull.
 */
export function cacheDecision(
  policy: PullOptions['policy'],
  presentDigest: string | undefined,
  pinnedDigest: string | undefined,
): 'cached' | 'pull' | 'missing' {
  const present = presentDigest !== undefined;
  if (policy === 'Never') return present ? 'cached' : 'missing';
  if (policy === 'IfNotPresent' && present) return 'cached';
  // A pinned digest that is present needs no round trip even under Always.
  if (present && pinnedDigest && presentDigest === pinnedDigest) return 'cached';
  return 'pull';
}

export interface BackoffDelays {
  initial: number;
  max: number;
}

/** The wait after the `failures`-th failure in a row: doubling from `initial`, capped at `max`. */
export function backoffDelay(failures: number, delays: BackoffDelays): number {
  return Math.min(delays.max, delays.initial * 2 ** (failures - 1));
}

/** Failed pulls per image name, and until when the next one is refused. */
export class PullBackoff {
  readonly #entries = new Map<string, { failures: number; until: number; error: ImageError }>();
  readonly #delays: BackoffDelays;
  readonly #now: () => number;

  constructor(delays: BackoffDelays, now: () => number = Date.now) {
    this.#delays = delays;
    this.#now = now;
  }

  /**
   * Throws ImagePullBackOff (with the last error) while `name` backs off;
   * otherwise returns how many pulls of it have failed in a row, for `failed`.
   */
  admit(name: string, sandbox: string): number {
    const b = this.#entries.get(name);
    if (b && b.until > this.#now()) {
      throw new ImageError({
        reason: 'ImagePullBackOff',
        step: 'pull',
        sandbox,
        message: `back-off pulling ${name} (${b.failures} failures); last error: ${b.error.message}`,
        hint: b.error.hint,
        retryable: true,
      });
    }
    return b?.failures ?? 0;
  }

  succeeded(name: string): void {
    this.#entries.delete(name);
  }

  /** Records failure number `priorFailures + 1` of `name`; returns it as an ImageError to throw. */
  failed(name: string, priorFailures: number, err: unknown): ImageError {
    const e =
      err instanceof ImageError
        ? err
        : new ImageError({ reason: 'ErrImagePull', step: 'pull', message: (err as Error).message, cause: err });
    const failures = priorFailures + 1;
    this.#entries.set(name, { failures, until: this.#now() + backoffDelay(failures, this.#delays), error: e });
    return e;
  }
}
