import { Worker } from 'node:worker_threads';

/**
 * Deletes links off the agent's main thread. Unregistering a veth waits for
 * RCU grace periods (~20 ms on this machine kind), and rtnetlink does that work
 * inside the sender's send(): on the main thread every sandbox deletion would
 * stall the agent's event loop (its API server, heartbeats, informers) for that
 * long, and a GC of hundreds of leaked veths for seconds.
 *
 * The worker is started lazily, from the main thread while it is in the node's
 * network namespace (a new thread inherits its creator's namespaces), and is
 * unref'd so it never keeps the process alive.
 */
export class LinkReaper {
  #worker: Worker | undefined;
  #next = 1;
  readonly #pending = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();

  /** Deletes the links by name; links already gone are fine. */
  delete(names: string[]): Promise<void> {
    if (names.length === 0) return Promise.resolve();
    const worker = this.#start();
    const id = this.#next++;
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ id, names });
    });
  }

  async close(): Promise<void> {
    const w = this.#worker;
    this.#worker = undefined;
    if (w) await w.terminate();
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL('./link-reaper-worker.js', import.meta.url));
    worker.unref();
    worker.on('message', (m: { id: number; error?: string }) => {
      const p = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      if (m.error) p?.reject(new Error(m.error));
      else p?.resolve();
    });
    worker.on('error', (err) => this.#failAll(err));
    worker.on('exit', () => {
      if (this.#worker === worker) this.#worker = undefined;
      this.#failAll(new Error('link reaper thread exited'));
    });
    this.#worker = worker;
    return worker;
  }

  #failAll(err: Error): void {
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }
}
