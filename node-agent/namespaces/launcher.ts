import { stat } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { SandpitError } from '../../lib/errors.js';
import type { LaunchPlan, LaunchResult } from './plans.js';

/*
 * A small pool of pre-warmed launcher threads. Starting a worker and loading
 * koffi in it costs ~100 ms, so that happens ahead of time; a request only
 * posts its plan. Each thread is used once (it ends inside the container's
 * namespaces) and a replacement starts warming at once.
 */

interface Warm {
  worker: Worker;
  ready: Promise<void>;
}

const WORKER_URL = new URL('./launcher-worker.js', import.meta.url);
/** How long close() waits for a thread that is still loading (normally ~100 ms). */
const WARM_TIMEOUT_MS = 10_000;

export class LauncherPool {
  readonly #size: number;
  readonly #warm: Warm[] = [];
  #closed = false;

  private constructor(size: number) {
    this.#size = size;
  }

  /**
   * libuv's thread pool is created by whichever thread first needs it, and its
   * threads inherit that thread's namespaces and root: make sure it is born on
   * the agent's main thread, in the host's namespaces, before any launcher runs.
   */
  static async create(size = 2): Promise<LauncherPool> {
    await stat('/');
    const pool = new LauncherPool(size);
    pool.#fill();
    await Promise.all(pool.#warm.map((w) => w.ready));
    return pool;
  }

  #fill(): void {
    while (!this.#closed && this.#warm.length < this.#size) this.#warm.push(startWorker());
  }

  async launch(plan: LaunchPlan): Promise<LaunchResult> {
    if (this.#closed) throw new SandpitError({ step: 'launch', sandbox: plan.sandbox, message: 'launcher pool is closed' });
    const w = this.#warm.shift() ?? startWorker();
    await w.ready;
    return new Promise<LaunchResult>((resolve, reject) => {
      const onExit = (code: number) => {
        setImmediate(() => this.#fill());
        resolve({ error: { message: `launcher thread exited (${code}) without a result`, step: 'launch', sandbox: plan.sandbox } });
      };
      const onError = (err: Error) => reject(new SandpitError({ step: 'launch', sandbox: plan.sandbox, message: `launcher thread failed: ${String(err)}`, cause: err }));
      w.worker.once('message', (r: LaunchResult) => {
        w.worker.off('exit', onExit);
        w.worker.off('error', onError);
        if (r.reusable && !this.#closed && this.#warm.length < this.#size + 1) this.#warm.unshift(w);
        else if (r.reusable) void w.worker.terminate();
        resolve(r);
        // Warming a replacement costs 50-200 ms of CPU: start it after this
        // launch, not during it (on a 2-core node the two compete).
        setImmediate(() => this.#fill());
      });
      w.worker.once('error', onError);
      w.worker.once('exit', onExit);
      w.worker.postMessage(plan);
    });
  }

  /**
   * Ends the warm threads. A thread still loading its modules is let finish
   * first: terminating it mid-load makes koffi throw into a dying isolate,
   * which aborts the whole process (seen in CI as a FATAL napi_throw).
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#warm.splice(0).map(async (w) => {
      let timer: NodeJS.Timeout | undefined;
      const loaded = new Promise<void>((resolve) => { timer = setTimeout(resolve, WARM_TIMEOUT_MS); });
      await Promise.race([w.ready.catch(() => undefined), loaded]);
      clearTimeout(timer);
      await w.worker.terminate();
    }));
  }
}

function startWorker(): Warm {
  const worker = new Worker(WORKER_URL);
  worker.unref();
  const ready = new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  ready.catch(() => undefined);
  return { worker, ready };
}
