import { rmSync } from 'node:fs';
import type { Logger } from '../../lib/log.js';
import type { Credential } from './auth.js';
import { Semaphore, SingleFlight } from './concurrency.js';
import { ImageError } from './errors.js';
import type { Descriptor } from './manifest.js';
import type { ImageReference } from './reference.js';
import type { RegistryClient } from './registry.js';
import type { ContentStore } from './store.js';
import { compressionOf, unpackLayer, type UnpackLimits } from './unpack.js';

/*
 * Makes content present in the store, once however many pulls ask: a blob is
 * downloaded by one pull at a time (and at most `concurrentDownloads` blobs
 * at once), a layer unpacked once per ChainID. Unpacking goes into a staging
 * directory that is committed whole or removed, so a layer dir is never half there.
 */

/** Counters for tests and metrics. */
export interface PullStats {
  bytesDownloaded: number;
  blobsDownloaded: number;
  layersUnpacked: number;
  manifestRequests: number;
}

/** An image config is read into memory whole, so a registry must not choose its size. */
const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export class ContentFetcher {
  readonly #store: ContentStore;
  readonly #client: RegistryClient;
  readonly #downloads: Semaphore;
  readonly #limits: UnpackLimits;
  readonly #stats: PullStats;
  readonly #blobFlight = new SingleFlight<void>();
  readonly #layerFlight = new SingleFlight<void>();

  constructor(deps: {
    store: ContentStore;
    client: RegistryClient;
    concurrentDownloads: number;
    limits: UnpackLimits;
    stats: PullStats;
  }) {
    this.#store = deps.store;
    this.#client = deps.client;
    this.#downloads = new Semaphore(deps.concurrentDownloads);
    this.#limits = deps.limits;
    this.#stats = deps.stats;
  }

  /** The config blob, fetched if needed; refused above 8 MiB. */
  async config(ref: ImageReference, desc: Descriptor, creds: Credential[]): Promise<Buffer> {
    if (desc.size > MAX_CONFIG_BYTES)
      throw new ImageError({
        reason: 'ErrImagePull',
        step: 'pull',
        message: `config of ${desc.size} bytes is too large`,
        retryable: false,
      });
    await this.blob(ref, desc, creds);
    return this.#store.readBlob(desc.digest);
  }

  /** Makes the blob present in the store: one download per digest at a time, bounded in parallel. */
  blob(ref: ImageReference, desc: Descriptor, creds: Credential[]): Promise<void> {
    if (this.#store.hasBlob(desc.digest)) return Promise.resolve();
    return this.#blobFlight.do(desc.digest, () =>
      this.#downloads.run(async () => {
        if (this.#store.hasBlob(desc.digest)) return;
        await this.#client.downloadBlob(ref, desc, this.#store.ingestPath(desc.digest), creds, (n) => {
          this.#stats.bytesDownloaded += n;
        });
        this.#store.commitIngest(desc.digest);
        this.#stats.blobsDownloaded++;
      }),
    );
  }

  /**
   * Makes the layer whose ChainID ends `chain` present, unpacking its blob
   * (already in the store) on top of the layers named by the rest of `chain`.
   */
  layer(desc: Descriptor, diffID: string, chain: string[], log: Logger): Promise<void> {
    const chainID = chain[chain.length - 1]!;
    if (this.#store.hasLayer(chainID)) return Promise.resolve();
    return this.#layerFlight.do(chainID, async () => {
      if (this.#store.hasLayer(chainID)) return;
      const compression = compressionOf(desc.mediaType)!;
      const dir = this.#store.stagingLayerDir(chainID);
      try {
        const r = await unpackLayer({
          blobPath: this.#store.blobPath(desc.digest),
          compressedSize: desc.size,
          compression,
          diffID,
          dir,
          lowerDirs: chain
            .slice(0, -1)
            .reverse()
            .map((c) => this.#store.layerPath(c)),
          limits: this.#limits,
          log,
        });
        this.#store.commitLayer(dir, chainID);
        this.#stats.layersUnpacked++;
        log.debug({ chainID, entries: r.entries, bytes: r.bytes }, 'layer unpacked');
      } catch (err) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    });
  }
}
