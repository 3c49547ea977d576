/** At most n of the functions run at a time; the others wait their turn in order. */
export class Semaphore {
  #free: number;
  #waiters: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((r) => this.#waiters.push(r));
    try {
      return await fn();
    } finally {
      const next = this.#waiters.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

/** One in-flight promise per key: concurrent callers share it. */
export class SingleFlight<T> {
  #inflight = new Map<string, Promise<T>>();
  do(key: string, fn: () => Promise<T>): Promise<T> {
    let p = this.#inflight.get(key);
    if (!p) {
      p = fn().finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, p);
    }
    return p;
  }
}
