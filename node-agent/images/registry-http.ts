import { request, type Dispatcher } from 'undici';
import { SandpitError } from '../../lib/errors.js';
import { ImageError } from './errors.js';

/*
 * One HTTP exchange with a registry or token endpoint. Redirects are followed
 * by hand so the Authorization header never reaches another origin (blob
 * storage behind a 307 gets a signed URL, not our bearer token).
 */

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

/** The first value of a response header. */
export const header = (r: RegistryResponse, name: string) => {
  const v = r.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/** A registry answer worth another try (a 429/5xx, a cut connection); the registry may say when (Retry-After). */
export class RetryableError extends SandpitError {
  readonly retryAfterSeconds: number | undefined;
  constructor(message: string, retryAfterSeconds?: number) {
    super({ step: 'registry request', message });
    this.name = 'RetryableError';
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** What went wrong, without the step a RetryableError's message wraps it in (the pull error names its own). */
export const errorDetail = (err: unknown) => (err instanceof RetryableError ? err.detail : (err as Error).message);

const REDIRECTS = [301, 302, 303, 307, 308];
const MAX_HOPS = 6;

export type Send = (
  url: string,
  method: 'GET' | 'HEAD' | 'POST',
  headers: Record<string, string>,
  body?: string,
) => Promise<RegistryResponse>;

/** A `Send` over `dispatcher` that follows up to six redirects, dropping Authorization when the origin changes. */
export function sendFollowingRedirects(dispatcher: Dispatcher): Send {
  return async (url, method, headers, body) => {
    let current = new URL(url);
    const origin = current.origin;
    for (let hop = 0; hop < MAX_HOPS; hop++) {
      const h = { ...headers };
      if (current.origin !== origin) delete h.authorization;
      const r = await request(current, { method, headers: h, body, dispatcher });
      if (REDIRECTS.includes(r.statusCode)) {
        const loc = r.headers.location;
        await r.body.dump();
        if (typeof loc !== 'string') throw new RetryableError(`redirect without Location from ${current.host}`);
        current = new URL(loc, current);
        continue;
      }
      return { status: r.statusCode, headers: r.headers, body: r.body };
    }
    throw new ImageError({
      reason: 'ErrImagePull',
      step: 'pull',
      message: `too many redirects from ${url}`,
      retryable: false,
    });
  };
}
