import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../lib/log.js';
import { ImageError } from './errors.js';
import { errorDetail, RetryableError } from './registry-http.js';

/*
 * Back-off for registry requests. An ImageError is final (the registry said
 * no, or the content is wrong); anything else — a 429/5xx, a reset — is tried
 * again, waiting at least as long as a Retry-After asked, but never more than
 * 10 s for it, so one slow registry cannot hold a pull for minutes.
 */

export interface RetryPolicy {
  maxRetries: number;
  /** First back-off delay; doubles on each retry. */
  retryDelayMs: number;
  log?: Logger;
}

const MAX_RETRY_AFTER_MS = 10_000;

/** How long to wait before attempt `attempt + 1`, given what the registry asked for (Retry-After, seconds). */
export function retryDelay(attempt: number, retryDelayMs: number, retryAfterSeconds: number | undefined): number {
  const retryAfter = retryAfterSeconds !== undefined ? Math.min(retryAfterSeconds * 1000, MAX_RETRY_AFTER_MS) : 0;
  return Math.max(retryAfter, retryDelayMs * 2 ** attempt);
}

/** Runs `fn` until it succeeds, throws an ImageError, or has failed `maxRetries + 1` times (then ErrImagePull naming `what`). */
export async function withRetries<T>(what: string, policy: RetryPolicy, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ImageError) throw err;
      if (attempt >= policy.maxRetries) {
        throw new ImageError({
          reason: 'ErrImagePull',
          step: 'pull',
          message: `${what}: ${errorDetail(err)}`,
          cause: err,
        });
      }
      const delay = retryDelay(
        attempt,
        policy.retryDelayMs,
        err instanceof RetryableError ? err.retryAfterSeconds : undefined,
      );
      policy.log?.debug({ what, attempt, delay, err: errorDetail(err) }, 'retrying registry request');
      await sleep(delay);
    }
  }
}
