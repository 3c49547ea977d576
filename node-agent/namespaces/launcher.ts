import { stat } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { SandpitError } from '../../lib/errors.js';
import type { LaunchPlan, LaunchResult } from './plans.js';

/*
 * A small pool of launcher threads. Starting a worker and loading koffi in it
 * costs ~100 ms of CPU, so threads are warmed ahead of time and a request only
 * posts its plan. A thread that launched a container steps back into the
 * host's namespaces and serves again; one that ran an exec (its credentials
 * and filter are the container's) exits, and a replacement starts warming.
 * At most `max` threads live at once: more would only compete for the cores,
 * so further requests wait for a thread to come back.
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
  readonly #max: number;
  readonly #idle: Warm[] = [];
  readonly #waiting: ((w: Warm) => void)[] = [];
  /** Threads started and not yet exited or terminated (idle, warming or busy). */
  #live = 0;
  #started = 0;
  #closed = false;

  private constructor(size: number, max: number) {
    this.#size = size;
    this.#max = Math.max(size, max);
  }

  /**
   * libuv's thread pool is created by whichever thread first needs it, and its
   * threads inherit that thread's namespaces and root: make sure it is born on
   * the agent's main thread, in the host's namespaces, before any launcher runs.
   */
  static async create(size = 2, max = 4): Promise<LauncherPool> {
    await stat('/');
    const pool = new LauncherPool(size, max);
    pool.#fill();
    await Promise.all(pool.#idle.map((w) => w.ready));
    return pool;
  }

  /** Keeps `size` threads warm (and one per waiting request, up to `max`). */
  #fill(): void {
    while (!this.#closed && this.#live < this.#max && (this.#idle.length < this.#size || this.#waiting.length > 0)) {
      const w = this.#start();
      const waiter = this.#waiting.shift();
      if (waiter) waiter(w);
      else this.#idle.push(w);
    }
  }

  /** Threads started since the pool was made, and threads alive now. */
  stats(): { started: number; live: number; max: number } {
    return { started: this.#started, live: this.#live, max: this.#max };
  }

  #start(): Warm {
    this.#live++;
    this.#started++;
    return startWorker();
  }

  #take(): Promise<Warm> {
    const idle = this.#idle.shift();
    if (idle) return Promise.resolve(idle);
    if (this.#live < this.#max) return Promise.resolve(this.#start());
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #giveBack(w: Warm): void {
    const waiter = this.#waiting.shift();
    if (waiter) waiter(w);
    else this.#idle.unshift(w);
  }

  #gone(): void {
    this.#live--;
    // Warming a replacement costs 50-200 ms of CPU: start it after this
    // launch, not during it (on a 2-core node the two compete).
    setImmediate(() => this.#fill());
  }

  async launch(plan: LaunchPlan): Promise<LaunchResult> {
    if (this.#closed)
      throw new SandpitError({ step: 'launch', sandbox: plan.sandbox, message: 'launcher pool is closed' });
    const w = await this.#take();
    try {
      await w.ready;
    } catch (err) {
      this.#gone();
      throw new SandpitError({
        step: 'launch',
        sandbox: plan.sandbox,
        message: `launcher thread failed to start: ${String(err)}`,
        cause: err,
      });
    }
    return new Promise<LaunchResult>((resolve, reject) => {
      const onExit = (code: number) => {
        w.worker.off('error', onError);
        this.#gone();
        resolve({
          error: {
            message: `launcher thread exited (${code}) without a result`,
            step: 'launch',
            sandbox: plan.sandbox,
          },
        });
      };
      const onError = (err: Error) =>
        reject(
          new SandpitError({
            step: 'launch',
            sandbox: plan.sandbox,
            message: `launcher thread failed: ${String(err)}`,
            cause: err,
          }),
        );
      w.worker.once('message', (r: LaunchResult) => {
        w.worker.off('exit', onExit);
        w.worker.off('error', onError);
        if (r.reusable && !this.#closed) this.#giveBack(w);
        else {
          // A thread that will not serve again exits by itself; one that could is ended here.
          if (r.reusable) void w.worker.terminate();
          this.#gone();
        }
        resolve(r);
      });
      w.worker.once('error', onError);
      w.worker.once('exit', onExit);
      w.worker.postMessage(plan);
    });
  }

  /**
   * Ends the idle threads. A thread still loading its modules is let finish
   * first: terminating it mid-load makes koffi throw into a dying isolate,
   * which aborts the whole process (seen in CI as a FATAL napi_throw).
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(
      this.#idle.splice(0).map(async (w) => {
        let timer: NodeJS.Timeout | undefined;
        const loaded = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, WARM_TIMEOUT_MS);
        });
        await Promise.race([w.ready.catch(() => undefined), loaded]);
        clearTimeout(timer);
        await w.worker.terminate();
      }),
    );
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
