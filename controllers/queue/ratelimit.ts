/**
 * Per-key exponential back-off: base·2^failures, capped. The defaults (5 ms to
 * 1000 s) are controller-runtime's, so a key that keeps failing settles at one
 * try every ~16 minutes instead of hammering the API server or an agent.
 */
export class ItemBackoff {
  readonly #failures = new Map<string, number>();
  constructor(
    readonly baseMs: number,
    readonly maxMs: number,
  ) {}

  next(key: string): number {
    const n = this.#failures.get(key) ?? 0;
    this.#failures.set(key, n + 1);
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(n, 40));
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }
}

/**
 * A token bucket over all keys (client-go's 10 qps, burst 100): when many keys
 * fail at once, retries are spread out instead of arriving as one burst.
 * reserve() takes a token and says how long to wait for it.
 */
export class TokenBucket {
  #tokens: number;
  #last: number;
  constructor(
    readonly qps: number,
    readonly burst: number,
    readonly now: () => number = () => performance.now(),
  ) {
    this.#tokens = burst;
    this.#last = now();
  }

  reserve(): number {
    const t = this.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((t - this.#last) / 1000) * this.qps);
    this.#last = t;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : (-this.#tokens / this.qps) * 1000;
  }
}
