import type { Logger } from '../../lib/log.js';
import type { NetworkProvider, SandboxId } from '../contracts.js';

/** The image store's side of garbage collection (OciImageProvider). */
export interface CollectableImages {
  /** Sandboxes that still hold image references on disk. */
  sandboxesHolding(): SandboxId[];
  /** Drops every reference the sandbox holds. */
  release(sandbox: SandboxId): Promise<void>;
  /** Removes content no image record, sandbox or in-flight pull uses. */
  collectGarbage(): Promise<{ blobs: string[]; layers: string[]; ingest: string[] }>;
}

export interface NodeGcOptions {
  /** Ids of every sandbox the runtime knows (being created or deleted included). */
  live: () => Set<SandboxId>;
  network?: NetworkProvider;
  images?: CollectableImages;
  log: Logger;
  /** Period of the pass; 0 runs it only when asked. */
  intervalMs: number;
}

export interface NodeGcReport {
  /** Sandboxes whose image references were dropped because the runtime no longer knows them. */
  imageRefs: SandboxId[];
  images?: { blobs: string[]; layers: string[]; ingest: string[] };
  errors: string[];
}

/**
 * The agent's garbage collection: at start (after the runtime re-adopted what
 * survived) and then periodically, everything the node holds for sandboxes
 * the runtime does not know is removed — leases, veths and nftables rules
 * (network/provider.ts), image references and then unreferenced blobs and
 * layers (images/store.ts; never what an in-flight pull leased). It is the
 * safety net behind teardown, for what a crash or a failed teardown left.
 *
 * `live` is read at the start of each part, synchronously with that part's
 * decisions: a sandbox being created is already in the runtime's list before
 * its network or images are set up, so it is never judged dead. Passes never
 * overlap.
 */
export class NodeGarbageCollector {
  readonly #opts: NodeGcOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<NodeGcReport> | undefined;

  constructor(opts: NodeGcOptions) {
    this.#opts = opts;
  }

  /** Runs one pass now (in the background) and then every intervalMs. */
  start(): void {
    void this.run();
    if (this.#opts.intervalMs > 0) {
      this.#timer = setInterval(() => void this.run(), this.#opts.intervalMs);
      this.#timer.unref();
    }
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One pass; a pass already running is joined rather than doubled. Errors are logged and reported, never thrown. */
  run(): Promise<NodeGcReport> {
    this.#running ??= this.#pass().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #pass(): Promise<NodeGcReport> {
    const { network, images, log } = this.#opts;
    const report: NodeGcReport = { imageRefs: [], errors: [] };
    const fail = (step: string, err: unknown) => {
      report.errors.push(`${step}: ${(err as Error).message}`);
      log.warn({ step, err: (err as Error).message }, 'garbage collection step failed; the next pass retries');
    };
    if (network) {
      try {
        await network.collectGarbage(this.#opts.live(), log);
      } catch (err) {
        fail('collect sandbox network objects', err);
      }
    }
    if (images) {
      try {
        const live = this.#opts.live();
        report.imageRefs = images.sandboxesHolding().filter((id) => !live.has(id));
        for (const id of report.imageRefs) await images.release(id);
        report.images = await images.collectGarbage();
        const removed = report.images.blobs.length + report.images.layers.length + report.images.ingest.length;
        if (removed || report.imageRefs.length)
          log.info({ sandboxes: report.imageRefs, ...report.images }, 'collected unreferenced image content');
      } catch (err) {
        fail('collect image content', err);
      }
    }
    return report;
  }
}
