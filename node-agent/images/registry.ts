import { createHash } from 'node:crypto';
import { closeSync, constants, ftruncateSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import type { Logger } from '../../lib/log.js';
import { basicAuth, parseChallenges, TokenCache, type Challenge, type Credential } from './auth.js';
import { SandpitError } from '../../lib/errors.js';
import { ImageError } from './errors.js';
import { MEDIA, manifestMediaType } from './manifest-media.js';
import { DIGEST_RE, registryHost, type ImageReference } from './reference.js';

/*
 * The OCI distribution API client: manifests and blobs, auth, redirects,
 * retries and Range resume, on undici so a custom CA and manual redirects are
 * possible. Every byte is checked against its digest as it streams.
 */

const ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest].join(', ');

/** containerd's MaxManifestSize. */
export const MAX_MANIFEST_BYTES = 4 * 1048 * 1048;

export interface RegistryClientOptions {
  /** Hosts (host[:port]) spoken to over plain HTTP. Everything else is HTTPS. */
  plainHttpHosts?: string[];
  /** Extra CA certificates (PEM) trusted for HTTPS registries and token endpoints. */
  ca?: string | Buffer | (string | Buffer)[];
  maxRetries?: number;
  /** First back-off delay; doubles on each retry. */
  retryDelayMs?: number;
  log?: Logger;
}

export interface FetchedManifest {
  mediaType: string;
  digest: string;
  body: Buffer;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

const header = (r: Response, name: string) => {
  const v = r.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/** A registry answer worth another try (a 429/5xx, a cut connection); the registry may say when (Retry-After). */
class RetryableError extends SandpitError {
  readonly retryAfterSeconds: number | undefined;
  constructor(message: string, retryAfterSeconds?: number) {
    super({ step: 'registry request', message });
    this.name = 'RetryableError';
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** What went wrong, without the step a RetryableError's message wraps it in (the pull error names its own). */
const errorDetail = (err: unknown) => (err instanceof RetryableError ? err.detail : (err as Error).message);

export class RegistryClient {
  readonly #dispatcher: Agent;
  readonly #plain: Set<string>;
  readonly #tokens = new TokenCache();
  readonly #challenges = new Map<string, Challenge | null>();
  readonly #maxRetries: number;
  readonly #retryDelayMs: number;
  readonly #log: Logger | undefined;

  constructor(opts: RegistryClientOptions = {}) {
    this.#dispatcher = new Agent({
      connect: opts.ca ? { ca: opts.ca } : {},
      headersTimeout: 30_000,
      bodyTimeout: 60_000,
    });
    this.#plain = new Set(opts.plainHttpHosts ?? []);
    this.#maxRetries = opts.maxRetries ?? 4;
    this.#retryDelayMs = opts.retryDelayMs ?? 250;
    this.#log = opts.log;
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  #base(ref: ImageReference): string {
    const host = registryHost(ref);
    return `${this.#plain.has(host) ? 'http' : 'https'}://${host}`;
  }

  /** One HTTP exchange following redirects by hand: Authorization never crosses to another origin. */
  async #send(
    url: string,
    method: 'GET' | 'HEAD' | 'POST',
    headers: Record<string, string>,
    body?: string,
  ): Promise<Response> {
    let current = new URL(url);
    const origin = current.origin;
    for (let hop = 0; hop < 6; hop++) {
      const h = { ...headers };
      if (current.origin !== origin) delete h.authorization;
      const r = await request(current, { method, headers: h, body, dispatcher: this.#dispatcher });
      if ([301, 302, 303, 307, 308].includes(r.statusCode)) {
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
  }

  async #challengeFor(ref: ImageReference): Promise<Challenge | null> {
    const host = registryHost(ref);
    if (this.#challenges.has(host)) return this.#challenges.get(host)!;
    const r = await this.#send(`${this.#base(ref)}/v2/`, 'GET', {});
    await r.body.dump();
    let c: Challenge | null = null;
    if (r.status === 401) {
      const all = parseChallenges(header(r, 'www-authenticate'));
      c = all.find((x) => x.scheme === 'bearer') ?? all.find((x) => x.scheme === 'basic') ?? null;
    }
    this.#challenges.set(host, c);
    return c;
  }

  async #token(ch: Challenge, scopes: string[], cred: Credential | undefined): Promise<string> {
    const realm = ch.params.realm;
    if (!realm)
      throw new ImageError({ reason: 'Unauthorized', step: 'authenticate', message: 'bearer challenge without realm' });
    const key = `${realm}|${ch.params.service ?? ''}|${scopes.join(' ')}|${cred?.username ?? ''}|${cred?.identityToken ? 'id' : ''}`;
    const cached = this.#tokens.get(key);
    if (cached) return cached;
    let r: Response;
    if (cred?.identityToken) {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: cred.identityToken,
        client_id: 'sandpit',
      });
      if (ch.params.service) form.set('service', ch.params.service);
      form.set('scope', scopes.join(' '));
      r = await this.#send(realm, 'POST', { 'content-type': 'application/x-www-form-urlencoded' }, form.toString());
    } else {
      const u = new URL(realm);
      if (ch.params.service) u.searchParams.set('service', ch.params.service);
      for (const s of scopes) u.searchParams.append('scope', s);
      const auth = cred ? basicAuth(cred) : undefined;
      r = await this.#send(u.toString(), 'GET', auth ? { authorization: auth } : {});
    }
    if (r.status === 401 || r.status === 403) {
      await r.body.dump();
      throw new ImageError({
        reason: 'Unauthorized',
        step: 'authenticate',
        message: `token endpoint ${new URL(realm).host} refused the credentials (HTTP ${r.status})`,
        hint: 'check the imagePullSecrets of the sandbox',
        retryable: false,
      });
    }
    if (r.status !== 200) {
      await r.body.dump();
      throw new RetryableError(`token endpoint answered HTTP ${r.status}`);
    }
    const j = (await r.body.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = j.token ?? j.access_token;
    if (!token)
      throw new ImageError({
        reason: 'Unauthorized',
        step: 'authenticate',
        message: 'token endpoint returned no token',
      });
    this.#tokens.set(key, token, j.expires_in);
    return token;
  }

  async #authHeader(
    ref: ImageReference,
    cred: Credential | undefined,
    extraScopes: string[] = [],
  ): Promise<string | undefined> {
    const ch = await this.#challengeFor(ref);
    if (!ch) return undefined;
    if (ch.scheme === 'basic') return cred ? basicAuth(cred) : undefined;
    const scopes = [`repository:${ref.path}:pull`, ...extraScopes.filter((s) => s !== `repository:${ref.path}:pull`)];
    return `Bearer ${await this.#token(ch, scopes, cred)}`;
  }

  /**
   * An authorised GET: retries once on 401 (new token; the scope asked for by
   * an insufficient_scope challenge), with back-off on 429/5xx/network errors.
   */
  async #get(
    ref: ImageReference,
    path: string,
    creds: Credential[],
    headers: Record<string, string>,
  ): Promise<Response> {
    const candidates: (Credential | undefined)[] = creds.length ? creds : [undefined];
    let lastUnauthorized: ImageError | undefined;
    for (const cred of candidates) {
      let extraScopes: string[] = [];
      for (let authTry = 0; authTry < 2; authTry++) {
        const auth = await this.#withRetries(`auth ${ref.domain}`, () => this.#authHeader(ref, cred, extraScopes));
        const r = await this.#withRetries(`GET ${path}`, async () => {
          const resp = await this.#send(`${this.#base(ref)}${path}`, 'GET', {
            ...headers,
            ...(auth ? { authorization: auth } : {}),
          });
          if (resp.status === 429 || resp.status >= 500) {
            const after = Number(header(resp, 'retry-after'));
            await resp.body.dump();
            throw new RetryableError(`HTTP ${resp.status}`, Number.isFinite(after) ? after : undefined);
          }
          return resp;
        });
        if (r.status !== 401) return r;
        const ch = parseChallenges(header(r, 'www-authenticate')).find((c) => c.scheme === 'bearer');
        await r.body.dump();
        if (ch?.params.error === 'insufficient_scope' && ch.params.scope) extraScopes = ch.params.scope.split(' ');
        // Forget the challenge and tokens: they may have rotated, or lacked the scope.
        this.#challenges.delete(registryHost(ref));
        this.#tokens.clearAll();
        lastUnauthorized = new ImageError({
          reason: 'Unauthorized',
          step: 'pull',
          message: `${ref.domain} refused ${cred ? `the credentials for user ${JSON.stringify(cred.username ?? '(token)')}` : 'anonymous access'} to ${ref.path}`,
          hint: cred ? 'check the pull secret' : 'add an imagePullSecret with credentials for this registry',
          retryable: false,
        });
      }
    }
    throw lastUnauthorized!;
  }

  async #withRetries<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof ImageError) throw err;
        if (attempt >= this.#maxRetries) {
          throw new ImageError({
            reason: 'ErrImagePull',
            step: 'pull',
            message: `${what}: ${errorDetail(err)}`,
            cause: err,
          });
        }
        const retryAfter =
          err instanceof RetryableError && err.retryAfterSeconds !== undefined
            ? Math.min(err.retryAfterSeconds * 1000, 10_000)
            : 0;
        const delay = Math.max(retryAfter, this.#retryDelayMs * 2 ** attempt);
        this.#log?.debug({ what, attempt, delay, err: errorDetail(err) }, 'retrying registry request');
        await sleep(delay);
      }
    }
  }

  async #errorFor(r: Response, what: string): Promise<ImageError> {
    let codes = '';
    try {
      const text = await r.body.text();
      const j = JSON.parse(text.slice(0, 65536)) as { errors?: { code?: string; message?: string }[] };
      codes = (j.errors ?? []).map((e) => `${e.code}: ${e.message}`).join('; ');
    } catch {
      /* body is not the JSON error document */
    }
    if (r.status === 404) {
      return new ImageError({
        reason: 'ManifestUnknown',
        step: 'pull',
        message: `${what} not found${codes ? ` (${codes})` : ''}`,
        hint: 'check the image name and tag',
        retryable: false,
      });
    }
    if (r.status === 403) {
      return new ImageError({
        reason: 'Unauthorized',
        step: 'pull',
        message: `${what}: access denied${codes ? ` (${codes})` : ''}`,
        retryable: false,
      });
    }
    return new ImageError({
      reason: 'ErrImagePull',
      step: 'pull',
      message: `${what}: HTTP ${r.status}${codes ? ` (${codes})` : ''}`,
    });
  }

  /** Fetches a manifest or index by tag or digest, bounded and verified. */
  async getManifest(ref: ImageReference, tagOrDigest: string, creds: Credential[]): Promise<FetchedManifest> {
    const r = await this.#get(ref, `/v2/${ref.path}/manifests/${tagOrDigest}`, creds, { accept: ACCEPT });
    if (r.status !== 200) throw await this.#errorFor(r, `manifest ${ref.path}:${tagOrDigest}`);
    const declared = Number(header(r, 'content-length') ?? '0');
    if (declared > MAX_MANIFEST_BYTES) {
      await r.body.dump();
      throw new ImageError({
        reason: 'ErrImagePull',
        step: 'pull',
        message: `manifest of ${declared} bytes exceeds ${MAX_MANIFEST_BYTES}`,
        retryable: false,
      });
    }
    const parts: Buffer[] = [];
    let n = 0;
    for await (const chunk of r.body) {
      n += (chunk as Buffer).length;
      if (n > MAX_MANIFEST_BYTES) {
        r.body.destroy();
        throw new ImageError({
          reason: 'ErrImagePull',
          step: 'pull',
          message: `manifest exceeds ${MAX_MANIFEST_BYTES} bytes`,
          retryable: false,
        });
      }
      parts.push(chunk as Buffer);
    }
    const body = Buffer.concat(parts);
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    if (DIGEST_RE.test(tagOrDigest) && digest !== tagOrDigest) {
      throw new ImageError({
        reason: 'ErrImagePull',
        step: 'verify manifest',
        message: `manifest digest ${digest} does not match ${tagOrDigest}`,
        retryable: false,
      });
    }
    const claimed = header(r, 'docker-content-digest');
    if (claimed && DIGEST_RE.test(claimed) && claimed !== digest) {
      throw new ImageError({
        reason: 'ErrImagePull',
        step: 'verify manifest',
        message: `Docker-Content-Digest ${claimed} does not match the body (${digest})`,
        retryable: false,
      });
    }
    const contentType = (header(r, 'content-type') ?? '').split(';')[0]!.trim();
    return { mediaType: manifestMediaType(contentType, body), digest, body };
  }

  /**
   * Downloads a blob into `ingestPath`, resuming from what is already there
   * (Range), verifying size and digest. Returns when the file holds exactly the blob.
   */
  async downloadBlob(
    ref: ImageReference,
    desc: Descriptor,
    ingestPath: string,
    creds: Credential[],
    onBytes?: (n: number) => void,
  ): Promise<void> {
    if (!DIGEST_RE.test(desc.digest))
      throw new ImageError({
        reason: 'ErrImagePull',
        step: 'pull',
        message: `invalid digest ${desc.digest}`,
        retryable: false,
      });
    // Not O_APPEND: Linux pwrite ignores the offset on O_APPEND fds.
    const fd = openSync(ingestPath, constants.O_RDWR | constants.O_CREAT, 0o600);
    try {
      let hash = createHash('sha256');
      let offset = 0;
      // Re-hash what a previous attempt left, so resuming survives an agent restart.
      const have = Math.min(statSync(ingestPath).size, desc.size);
      ftruncateSync(fd, have);
      const buf = Buffer.alloc(1024 * 1024);
      while (offset < have) {
        const got = readSync(fd, buf, 0, Math.min(buf.length, have - offset), offset);
        if (got <= 0) break;
        hash.update(buf.subarray(0, got));
        offset += got;
      }
      let stalls = 0;
      while (offset < desc.size) {
        const before = offset;
        try {
          const range: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
          const r = await this.#get(ref, `/v2/${ref.path}/blobs/${desc.digest}`, creds, range);
          if (r.status === 206 && offset > 0) {
            const cr = header(r, 'content-range') ?? '';
            const m = /^bytes (\d+)-/.exec(cr);
            if (!m || Number(m[1]) !== offset) {
              await r.body.dump();
              throw new RetryableError(`bad Content-Range ${JSON.stringify(cr)} for offset ${offset}`);
            }
          } else if (r.status === 200) {
            if (offset > 0) {
              // The server ignored Range and sends the whole blob: start over rather than append a second copy.
              ftruncateSync(fd, 0);
              offset = 0;
              hash = createHash('sha256');
            }
          } else {
            throw await this.#errorFor(r, `blob ${desc.digest}`);
          }
          for await (const chunk of r.body) {
            const c = chunk as Buffer;
            if (offset + c.length > desc.size) {
              r.body.destroy();
              throw new ImageError({
                reason: 'ErrImagePull',
                step: 'verify blob',
                message: `blob ${desc.digest} is larger than its descriptor size ${desc.size}`,
                retryable: false,
              });
            }
            writeSync(fd, c, 0, c.length, offset);
            hash.update(c);
            offset += c.length;
            onBytes?.(c.length);
          }
          if (offset < desc.size) throw new RetryableError('connection closed before the end of the blob');
        } catch (err) {
          if (err instanceof ImageError) throw err;
          // Retry immediately while progress is made; back off when it is not.
          if (offset === before) stalls++;
          if (stalls > this.#maxRetries) {
            throw new ImageError({
              reason: 'ErrImagePull',
              step: 'pull',
              message: `blob ${desc.digest}: ${(err as Error).message}`,
              cause: err,
            });
          }
          this.#log?.debug({ digest: desc.digest, offset, err: (err as Error).message }, 'resuming blob download');
          if (offset === before) await sleep(this.#retryDelayMs * 2 ** stalls);
        }
      }
      const digest = `sha256:${hash.digest('hex')}`;
      if (digest !== desc.digest) {
        ftruncateSync(fd, 0);
        throw new ImageError({
          reason: 'ErrImagePull',
          step: 'verify blob',
          message: `blob content is ${digest}, expected ${desc.digest}`,
          hint: 'the registry served corrupted data',
          retryable: false,
        });
      }
    } finally {
      closeSync(fd);
    }
  }
}
