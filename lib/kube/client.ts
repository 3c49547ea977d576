import { Agent, request, type RequestOptions } from 'node:https';
import { createInterface } from 'node:readline';
import { createSecureContext } from 'node:tls';
import type { KubeConfig } from '@kubernetes/client-node';
import { SandpitError } from '../errors.js';

/*
 * A small JSON client for the Kubernetes API. client-node 1.x is used only
 * for what it does well (loading kubeconfigs, in-cluster credentials, token
 * files); requests go through node:https so that every call has a timeout and
 * every watch has an idle timeout. client-node 1.4's own watch has neither
 * (its timeout signal is overwritten), which is how informers go silently
 * deaf on a half-open TCP connection.
 */

/** A non-2xx answer of the API server, with the Status reason (NotFound, Conflict, ...). */
export class ApiError extends SandpitError {
  declare readonly reason: string;
  constructor(
    readonly status: number,
    reason: string,
    /** The request (`GET /api/v1/...`, `watch /apis/...`) and what the API server said. */
    what: { step: string; message: string },
    readonly body: unknown,
  ) {
    super({ ...what, reason });
    this.name = 'ApiError';
  }
}

export const isNotFound = (err: unknown) => err instanceof ApiError && err.status === 404;
export const isConflict = (err: unknown) => err instanceof ApiError && err.status === 409;
export const isAlreadyExists = (err: unknown) =>
  err instanceof ApiError && err.status === 409 && err.reason === 'AlreadyExists';

export type PatchType = 'merge' | 'json' | 'apply';
const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  apply: 'application/apply-patch+yaml',
};

export interface RequestOpts {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined>;
  patch?: PatchType;
  timeoutMs?: number;
}

/** One event of a watch stream. */
export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export class KubeClient {
  readonly server: URL;
  readonly #kc: KubeConfig;
  readonly #agent: Agent;
  readonly #userAgent: string;
  private constructor(kc: KubeConfig, server: URL, tls: RequestOptions, userAgent: string) {
    this.#kc = kc;
    this.server = server;
    this.#userAgent = userAgent;
    // One TLS context for every connection: given ca/cert/key instead, each new socket parses
    // them into a context of its own, which was most of what opening a connection cost us.
    const secureContext = createSecureContext({ ca: tls.ca, cert: tls.cert, key: tls.key });
    this.#agent = new Agent({
      keepAlive: true,
      maxSockets: 64,
      secureContext,
      rejectUnauthorized: tls.rejectUnauthorized,
      servername: tls.servername,
    });
  }

  /**
   * `userAgent` ("sandpit-controller/0.1.0") is what the API server names the
   * field manager after (the part before the "/") in managedFields and audit
   * logs; without one both components showed up as "unknown".
   */
  static async fromKubeConfig(kc: KubeConfig, userAgent = 'sandpit'): Promise<KubeClient> {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster: pass --kubeconfig or run in a pod');
    const opts: RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    return new KubeClient(
      kc,
      new URL(cluster.server),
      opts,
      `${userAgent} (${process.platform}/${process.arch}) node/${process.versions.node}`,
    );
  }

  /** The credentials' headers, fetched per request because token files rotate. */
  async #headers(): Promise<Record<string, string>> {
    const opts: RequestOptions = {};
    await this.#kc.applyToHTTPSOptions(opts);
    const headers: Record<string, string> = { 'user-agent': this.#userAgent };
    for (const [k, v] of Object.entries(opts.headers ?? {})) if (typeof v === 'string') headers[k] = v;
    if (opts.auth) headers.authorization = 'Basic ' + Buffer.from(opts.auth).toString('base64');
    return headers;
  }

  #url(path: string, query?: RequestOpts['query']): URL {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    return url;
  }

  /** Sends one request and parses the JSON answer; rejects with ApiError on a non-2xx status. */
  async request<T>(method: string, path: string, opts: RequestOpts = {}): Promise<T> {
    const url = this.#url(path, opts.query);
    const headers = await this.#headers();
    headers.accept = 'application/json';
    let payload: Buffer | undefined;
    if (opts.body !== undefined) {
      payload = Buffer.from(JSON.stringify(opts.body));
      headers['content-type'] = opts.patch ? PATCH_CONTENT_TYPE[opts.patch] : 'application/json';
      headers['content-length'] = String(payload.length);
    }
    // A kept-alive connection the server closed just as we reused it fails with
    // ECONNRESET/EPIPE before the request reached it: send it once more on a
    // fresh connection (Node's documented pattern for reusedSocket).
    const send = (retried: boolean) =>
      new Promise<T>((resolve, reject) => {
        const req = request(url, { method, headers, agent: this.#agent, timeout: opts.timeoutMs ?? 30_000 }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown = text;
            try {
              body = text ? JSON.parse(text) : undefined;
            } catch {
              /* keep text */
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) return resolve(body as T);
            const st = (body ?? {}) as { reason?: string; message?: string };
            reject(
              new ApiError(
                status,
                st.reason ?? String(status),
                { step: `${method} ${url.pathname}`, message: `${status} ${st.message ?? text.slice(0, 300)}` },
                body,
              ),
            );
          });
        });
        req.on('timeout', () =>
          req.destroy(
            new Error(`${method} ${url.pathname}: no answer from the API server within ${opts.timeoutMs ?? 30_000} ms`),
          ),
        );
        req.on('error', (err: NodeJS.ErrnoException) => {
          if (!retried && req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE'))
            return resolve(send(true));
          reject(err);
        });
        req.end(payload);
      });
    return send(false);
  }

  get<T>(path: string, query?: RequestOpts['query']) {
    return this.request<T>('GET', path, { query });
  }
  create<T>(path: string, body: unknown) {
    return this.request<T>('POST', path, { body });
  }
  replace<T>(path: string, body: unknown) {
    return this.request<T>('PUT', path, { body });
  }
  patch<T>(path: string, body: unknown, patch: PatchType = 'merge', query?: RequestOpts['query']) {
    return this.request<T>('PATCH', path, { body, patch, query });
  }
  delete<T>(path: string, body?: unknown) {
    return this.request<T>('DELETE', path, { body });
  }

  /**
   * Streams a watch until the server closes it (resolves) or it fails
   * (rejects). If no byte arrives for `idleMs` the connection is presumed dead
   * and the watch fails, so the caller's informer restarts it.
   */
  async watch<T>(
    path: string,
    query: RequestOpts['query'],
    onEvent: (ev: WatchEvent<T>) => void,
    opts: { idleMs: number; signal?: AbortSignal },
  ): Promise<void> {
    const url = this.#url(path, { ...query, watch: 1 });
    const headers = await this.#headers();
    headers.accept = 'application/json';
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: Error) => {
        if (settled) return;
        settled = true;
        opts.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const req = request(url, { method: 'GET', headers, agent: this.#agent, timeout: opts.idleMs }, (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let reason = String(res.statusCode);
            try {
              reason = (JSON.parse(text) as { reason?: string }).reason ?? reason;
            } catch {
              /* not a Status */
            }
            finish(
              new ApiError(
                res.statusCode ?? 0,
                reason,
                { step: `watch ${url.pathname}`, message: `${res.statusCode} ${text.slice(0, 300)}` },
                text,
              ),
            );
          });
          return;
        }
        const lines = createInterface({ input: res, crlfDelay: Infinity });
        // readline re-emits input errors; unhandled, one would crash the process
        lines.on('error', (e) => finish(e));
        lines.on('line', (line) => {
          if (!line.trim()) return;
          let ev: WatchEvent<T>;
          try {
            ev = JSON.parse(line) as WatchEvent<T>;
          } catch {
            req.destroy(new Error(`watch ${url.pathname}: undecodable event`));
            return;
          }
          try {
            onEvent(ev);
          } catch (err) {
            req.destroy(err as Error);
          }
        });
        res.on('error', (e) => finish(e));
        res.on('close', () => finish(res.complete ? undefined : new Error(`watch ${url.pathname}: stream cut`)));
      });
      const onAbort = () => req.destroy(new Error('watch stopped'));
      opts.signal?.addEventListener('abort', onAbort);
      req.on('timeout', () =>
        req.destroy(new Error(`watch ${url.pathname}: silent for ${opts.idleMs} ms, presumed dead`)),
      );
      req.on('error', (e) => finish(e));
      req.end();
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}
