import type { Logger } from '../../lib/log.js';
import { ApiError, type KubeClient } from '../../lib/kube/client.js';
import { keyOf, type KubeObject, type ObjectList } from '../../lib/kube/resources.js';

export interface InformerHandlers<T> {
  /** Called for a new object, and for every object again on each relist (level-based resync). */
  upsert(obj: T, old: T | undefined): void;
  deleted(obj: T): void;
}

export interface InformerOptions {
  path: string;
  labelSelector?: string;
  /** Server-side watch timeout; the server ends each watch cleanly after it and we resume from the last resourceVersion. */
  watchTimeoutSeconds?: number;
  /** Full relist period, the backstop against any missed event. */
  relistMs?: number;
  /** Restart back-off after an error: doubles from min to max, with jitter; reset by a successful list. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  onRestart?: (reason: string) => void;
  /** Called after each complete list, once its objects were handed to the handlers (contact regained). */
  onRelist?: () => void;
}

/**
 * A list-then-watch cache of one resource type. Unlike client-node's
 * ListWatch, it restarts itself after any error (with jittered back-off and
 * never two loops at once), treats a silent connection as dead (idle timeout
 * a little longer than the server's watch timeout), and relists
 * periodically. Handlers are called synchronously and must only enqueue.
 */
export class Informer<T extends KubeObject> {
  readonly #items = new Map<string, T>();
  readonly #client: KubeClient;
  readonly #opts: Required<Omit<InformerOptions, 'labelSelector' | 'onRestart' | 'onRelist'>> & InformerOptions;
  readonly #handlers: InformerHandlers<T>[] = [];
  readonly #log: Logger;
  #abort: AbortController | undefined;
  #running: Promise<void> | undefined;
  #synced = false;
  #syncWaiters: (() => void)[] = [];
  #lastContact = Date.now();

  constructor(client: KubeClient, opts: InformerOptions, log: Logger) {
    this.#client = client;
    this.#opts = { watchTimeoutSeconds: 60, relistMs: 5 * 60_000, minBackoffMs: 500, maxBackoffMs: 15_000, ...opts };
    this.#log = log.child({ informer: opts.path });
  }

  on(handlers: InformerHandlers<T>): void {
    this.#handlers.push(handlers);
  }

  get(key: string): T | undefined {
    return this.#items.get(key);
  }

  list(): T[] {
    return [...this.#items.values()];
  }

  get synced(): boolean {
    return this.#synced;
  }

  /** Milliseconds since the API server last answered this informer (the staleness watchdog's input). */
  get staleMs(): number {
    return Date.now() - this.#lastContact;
  }

  waitForSync(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((r) => this.#syncWaiters.push(r));
  }

  start(): void {
    if (this.#running) return;
    this.#abort = new AbortController();
    this.#running = this.#loop(this.#abort.signal);
  }

  async stop(): Promise<void> {
    this.#abort?.abort();
    await this.#running;
    this.#running = undefined;
  }

  async #loop(signal: AbortSignal): Promise<void> {
    let backoff = this.#opts.minBackoffMs;
    while (!signal.aborted) {
      try {
        let rv = await this.#relist();
        backoff = this.#opts.minBackoffMs;
        const relistAt = Date.now() + this.#opts.relistMs;
        while (!signal.aborted && Date.now() < relistAt) {
          rv = await this.#watchOnce(rv, signal);
        }
      } catch (err) {
        if (signal.aborted) break;
        const reason =
          err instanceof ApiError && err.status === 410 ? 'resourceVersion expired' : (err as Error).message;
        this.#opts.onRestart?.(reason);
        const delay = backoff * (0.5 + Math.random());
        this.#log.warn(
          { err: reason, retryInMs: Math.round(delay) },
          'Informer lost its stream; restarting with a fresh list',
        );
        backoff = Math.min(this.#opts.maxBackoffMs, backoff * 2);
        await sleep(delay, signal);
      }
    }
  }

  /** Lists everything and reconciles the cache with it: synthesises deletes, re-delivers every object. */
  async #relist(): Promise<string> {
    const seen = new Map<string, T>();
    let cont: string | undefined;
    let rv: string;
    do {
      const page = await this.#client.get<ObjectList<T>>(this.#opts.path, {
        labelSelector: this.#opts.labelSelector,
        limit: 500,
        continue: cont,
      });
      for (const item of page.items) seen.set(keyOf(item), slim(item));
      cont = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion;
    } while (cont);
    this.#lastContact = Date.now();
    for (const [key, old] of this.#items) {
      if (!seen.has(key)) {
        this.#items.delete(key);
        for (const h of this.#handlers) h.deleted(old);
      }
    }
    for (const [key, obj] of seen) {
      const old = this.#items.get(key);
      this.#items.set(key, obj);
      for (const h of this.#handlers) h.upsert(obj, old);
    }
    if (!this.#synced) {
      this.#synced = true;
      for (const w of this.#syncWaiters.splice(0)) w();
    }
    this.#opts.onRelist?.();
    return rv;
  }

  async #watchOnce(rv: string, signal: AbortSignal): Promise<string> {
    let last = rv;
    await this.#client.watch<T>(
      this.#opts.path,
      {
        resourceVersion: rv,
        allowWatchBookmarks: true,
        timeoutSeconds: this.#opts.watchTimeoutSeconds,
        labelSelector: this.#opts.labelSelector,
      },
      (ev) => {
        this.#lastContact = Date.now();
        if (ev.type === 'ERROR') {
          const st = ev.object as unknown as { code?: number; reason?: string; message?: string };
          throw new ApiError(
            st.code ?? 500,
            st.reason ?? 'WatchError',
            { step: 'watch', message: st.message ?? 'watch error' },
            st,
          );
        }
        last = ev.object.metadata.resourceVersion ?? last;
        if (ev.type === 'BOOKMARK') return;
        slim(ev.object);
        const key = keyOf(ev.object);
        const old = this.#items.get(key);
        if (ev.type === 'DELETED') {
          this.#items.delete(key);
          for (const h of this.#handlers) h.deleted(ev.object);
        } else {
          this.#items.set(key, ev.object);
          for (const h of this.#handlers) h.upsert(ev.object, old);
        }
      },
      { idleMs: (this.#opts.watchTimeoutSeconds + 30) * 1000, signal },
    );
    this.#lastContact = Date.now();
    return last;
  }
}

/**
 * Drops metadata.managedFields before an object is cached (controller-runtime's
 * TransformStripManagedFields): nothing here reads them, and with a few field
 * managers they are a large part of every cached Sandbox.
 */
function slim<T extends KubeObject>(obj: T): T {
  delete (obj.metadata as { managedFields?: unknown }).managedFields;
  return obj;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
