import { Agent } from 'undici';
import type { Logger } from '../../lib/log.js';
import type { Credential } from './auth.js';
import { downloadBlob } from './blob-download.js';
import type { ImageError } from './errors.js';
import { MANIFEST_ACCEPT, readManifest, type FetchedManifest } from './manifest-fetch.js';
import type { Descriptor } from './manifest.js';
import { registryHost, type ImageReference } from './reference.js';
import { accessRefused, RegistryAuthorizer, scopesAskedFor } from './registry-auth.js';
import { errorFor } from './registry-errors.js';
import { header, RetryableError, sendFollowingRedirects, type RegistryResponse, type Send } from './registry-http.js';
import { withRetries, type RetryPolicy } from './registry-retry.js';

/*
 * The OCI distribution API client: manifests and blobs over authorised GETs,
 * on undici so a custom CA and manual redirects are possible. The parts are
 * beside it: redirects (registry-http.ts), auth (registry-auth.ts), back-off
 * (registry-retry.ts), manifest bounds and digests (manifest-fetch.ts), blob
 * resume and digests (blob-download.ts), refusals (registry-errors.ts).
 */

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

export class RegistryClient {
  readonly #dispatcher: Agent;
  readonly #send: Send;
  readonly #plain: Set<string>;
  readonly #auth: RegistryAuthorizer;
  readonly #retry: RetryPolicy;

  constructor(opts: RegistryClientOptions = {}) {
    this.#dispatcher = new Agent({
      connect: opts.ca ? { ca: opts.ca } : {},
      headersTimeout: 30_000,
      bodyTimeout: 60_000,
    });
    this.#send = sendFollowingRedirects(this.#dispatcher);
    this.#plain = new Set(opts.plainHttpHosts ?? []);
    this.#auth = new RegistryAuthorizer(this.#send, (ref) => this.#base(ref));
    this.#retry = { maxRetries: opts.maxRetries ?? 4, retryDelayMs: opts.retryDelayMs ?? 250, log: opts.log };
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  #base(ref: ImageReference): string {
    const host = registryHost(ref);
    return `${this.#plain.has(host) ? 'http' : 'https'}://${host}`;
  }

  /**
   * An authorised GET: each credential in turn, each retried once on 401 (new
   * token; the scope asked for by an insufficient_scope challenge), with
   * back-off on 429/5xx/network errors.
   */
  async #get(
    ref: ImageReference,
    path: string,
    creds: Credential[],
    headers: Record<string, string>,
  ): Promise<RegistryResponse> {
    const candidates: (Credential | undefined)[] = creds.length ? creds : [undefined];
    let lastUnauthorized: ImageError | undefined;
    for (const cred of candidates) {
      let extraScopes: string[] = [];
      for (let authTry = 0; authTry < 2; authTry++) {
        const auth = await withRetries(`auth ${ref.domain}`, this.#retry, () =>
          this.#auth.authorization(ref, cred, extraScopes),
        );
        const r = await withRetries(`GET ${path}`, this.#retry, async () => {
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
        const asked = scopesAskedFor(header(r, 'www-authenticate'));
        await r.body.dump();
        if (asked) extraScopes = asked;
        this.#auth.forget(ref);
        lastUnauthorized = accessRefused(ref, cred);
      }
    }
    throw lastUnauthorized!;
  }

  /** Fetches a manifest or index by tag or digest, bounded and verified. */
  async getManifest(ref: ImageReference, tagOrDigest: string, creds: Credential[]): Promise<FetchedManifest> {
    const r = await this.#get(ref, `/v2/${ref.path}/manifests/${tagOrDigest}`, creds, { accept: MANIFEST_ACCEPT });
    if (r.status !== 200) throw await errorFor(r, `manifest ${ref.path}:${tagOrDigest}`);
    return readManifest(r, tagOrDigest);
  }

  /**
   * Downloads a blob into `ingestPath`, resuming from what is already there
   * (Range), verifying size and digest. Returns when the file holds exactly the blob.
   */
  downloadBlob(
    ref: ImageReference,
    desc: Descriptor,
    ingestPath: string,
    creds: Credential[],
    onBytes?: (n: number) => void,
  ): Promise<void> {
    const get = (range: Record<string, string>) => this.#get(ref, `/v2/${ref.path}/blobs/${desc.digest}`, creds, range);
    return downloadBlob(get, desc, ingestPath, this.#retry, onBytes);
  }
}
