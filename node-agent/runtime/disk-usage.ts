const DISK_USAGE_MAX_AGE_MS = 60_000;

/** The image store's size, walked at most once a minute (the walk visits every unpacked file). */
export class DiskUsageCache {
  readonly #store: { diskUsage(): { total: number } };
  #last: { at: number; bytes: number } | undefined;

  constructor(store: { diskUsage(): { total: number } }) {
    this.#store = store;
  }

  bytes(now = Date.now()): number | undefined {
    if (!this.#last || now - this.#last.at > DISK_USAGE_MAX_AGE_MS) {
      try {
        this.#last = { at: now, bytes: this.#store.diskUsage().total };
      } catch {
        return this.#last?.bytes; // a file vanished mid-walk (GC): keep the last figure, walk again next time
      }
    }
    return this.#last.bytes;
  }
}
