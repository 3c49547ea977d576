import { ItemBackoff, TokenBucket } from './ratelimit.js';

/** Hooks for the workqueue_* metrics; the queue itself stays free of prom-client. */
export interface QueueObserver {
  depth(n: number): void;
  added(): void;
  retried(): void;
  /** Seconds a key waited between add and get. */
  queued(seconds: number): void;
  /** Seconds a key was held between get and done. */
  worked(seconds: number): void;
}

const noObserver: QueueObserver = { depth() {}, added() {}, retried() {}, queued() {}, worked() {} };

/**
 * A keyed work queue with client-go semantics: a key waiting in the queue is
 * never queued twice (dedup), a key being worked on is never handed to a
 * second worker, and a key added while it is being worked on is queued again
 * when its worker calls done(), so no change is lost. Failed keys come back
 * after a per-key exponential back-off, bounded by a global token bucket.
 */
export class WorkQueue {
  readonly #queue: string[] = [];
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #addedAt = new Map<string, number>();
  readonly #startedAt = new Map<string, number>();
  readonly #timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  readonly #waiters: ((key: string | undefined) => void)[] = [];
  readonly #backoff: ItemBackoff;
  readonly #bucket: TokenBucket;
  readonly #obs: QueueObserver;
  #shutDown = false;

  constructor(
    opts: { baseDelayMs?: number; maxDelayMs?: number; qps?: number; burst?: number; observer?: QueueObserver } = {},
  ) {
    this.#backoff = new ItemBackoff(opts.baseDelayMs ?? 5, opts.maxDelayMs ?? 1000_000);
    this.#bucket = new TokenBucket(opts.qps ?? 10, opts.burst ?? 100);
    this.#obs = opts.observer ?? noObserver;
  }

  get length(): number {
    return this.#queue.length;
  }

  /** Queues the key now, unless it already waits. */
  add(key: string): void {
    if (this.#shutDown || this.#dirty.has(key)) return;
    this.#obs.added();
    this.#dirty.add(key);
    this.#addedAt.set(key, performance.now());
    if (this.#processing.has(key)) return; // done() queues it again
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#take(key);
      waiter(key);
      return;
    }
    this.#queue.push(key);
    this.#obs.depth(this.#queue.length);
  }

  /** Queues the key after a delay; an earlier pending delay for the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.#shutDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const pending = this.#timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.#timers.set(key, { at, timer });
  }

  /** Queues a failed key after its back-off (grows per failure until forget()). */
  addRateLimited(key: string): void {
    this.#obs.retried();
    const delay = Math.max(this.#backoff.next(key), this.#bucket.reserve());
    this.addAfter(key, delay);
  }

  /** Resets the key's back-off after a success. */
  forget(key: string): void {
    this.#backoff.forget(key);
  }

  failures(key: string): number {
    return this.#backoff.failures(key);
  }

  /** Waits for the next key; resolves undefined once the queue is shut down and drained. */
  async get(): Promise<string | undefined> {
    const key = this.#queue.shift();
    if (key !== undefined) {
      this.#obs.depth(this.#queue.length);
      this.#take(key);
      return key;
    }
    if (this.#shutDown) return undefined;
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #take(key: string): void {
    this.#dirty.delete(key);
    this.#processing.add(key);
    const now = performance.now();
    this.#startedAt.set(key, now);
    this.#obs.queued((now - (this.#addedAt.get(key) ?? now)) / 1000);
    this.#addedAt.delete(key);
  }

  /** Marks the key's work finished; a key re-added meanwhile is queued again. */
  done(key: string): void {
    this.#processing.delete(key);
    const started = this.#startedAt.get(key);
    this.#startedAt.delete(key);
    if (started !== undefined) this.#obs.worked((performance.now() - started) / 1000);
    if (this.#dirty.has(key)) {
      this.#dirty.delete(key);
      this.#addedAt.delete(key);
      this.add(key);
    }
  }

  /** Seconds the oldest in-flight key has been worked on (workqueue_longest_running_processor_seconds). */
  longestRunningSeconds(): number {
    let oldest = Infinity;
    for (const t of this.#startedAt.values()) oldest = Math.min(oldest, t);
    return oldest === Infinity ? 0 : (performance.now() - oldest) / 1000;
  }

  /** Stops accepting keys and wakes idle workers; in-flight keys still finish. */
  shutdown(): void {
    this.#shutDown = true;
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    for (const w of this.#waiters.splice(0)) w(undefined);
  }
}
