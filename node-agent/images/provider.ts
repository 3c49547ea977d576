import { createLogger, type Logger } from '../../lib/log.js';
import type { ImageProvider, PreparedImage, PullOptions, SandboxId } from '../contracts.js';
import { credentialsFor } from './auth.js';
import { SingleFlight } from './concurrency.js';
import { ContentFetcher, type PullStats } from './content-fetcher.js';
import { ImageError } from './errors.js';
import { hostPlatform, type Platform } from './platform.js';
import { cacheDecision, PullBackoff } from './pull-policy.js';
import { ImagePuller } from './puller.js';
import { formatReference, InvalidReferenceError, parseReference, type ImageReference } from './reference.js';
import { RegistryClient, type RegistryClientOptions } from './registry.js';
import { ContentStore, type ImageRecord } from './store.js';
import { DEFAULT_UNPACK_LIMITS, type UnpackLimits } from './unpack.js';

/*
 * The ImageProvider the runtime uses: decide from the pull policy and the
 * back-off whether to pull at all, pull once per image name however many
 * sandboxes ask (puller.ts), and hold references per sandbox until release().
 */

export interface OciImageProviderOptions {
  /** Store directory, e.g. /var/lib/sandpit/images. Must be on the filesystem overlay upper dirs can use. */
  root: string;
  registry?: RegistryClientOptions;
  platform?: Platform;
  /** Parallel blob downloads per provider (containerd uses 3). */
  concurrentDownloads?: number;
  limits?: Partial<UnpackLimits>;
  /** Back-off after a failed pull: first delay and cap, like the kubelet (10 s → 300 s). */
  backoffMs?: { initial: number; max: number };
  log?: Logger;
}

export class OciImageProvider implements ImageProvider {
  readonly store: ContentStore;
  readonly stats: PullStats = { bytesDownloaded: 0, blobsDownloaded: 0, layersUnpacked: 0, manifestRequests: 0 };
  readonly #client: RegistryClient;
  readonly #puller: ImagePuller;
  readonly #pullFlight = new SingleFlight<ImageRecord>();
  readonly #backoff: PullBackoff;
  readonly #preparing = new Set<Promise<ImageRecord>>();

  constructor(opts: OciImageProviderOptions) {
    this.store = new ContentStore(opts.root);
    const log = opts.log ?? createLogger('images');
    this.#client = new RegistryClient({ ...opts.registry, log });
    const content = new ContentFetcher({
      store: this.store,
      client: this.#client,
      concurrentDownloads: opts.concurrentDownloads ?? 3,
      limits: { ...DEFAULT_UNPACK_LIMITS, ...opts.limits },
      stats: this.stats,
    });
    this.#puller = new ImagePuller({
      store: this.store,
      client: this.#client,
      content,
      platform: opts.platform ?? hostPlatform(),
      stats: this.stats,
      log,
    });
    this.#backoff = new PullBackoff(opts.backoffMs ?? { initial: 10_000, max: 300_000 });
  }

  async close(): Promise<void> {
    await this.#client.close();
  }

  async prepare(reference: string, opts: PullOptions): Promise<PreparedImage> {
    let ref: ImageReference;
    try {
      ref = parseReference(reference);
    } catch (err) {
      throw new ImageError({
        reason: 'InvalidImageName',
        step: 'parse image reference',
        sandbox: opts.sandbox.id,
        message: `${JSON.stringify(reference)}: ${(err as InvalidReferenceError).detail}`,
        hint: 'fix spec.containers[].image',
        retryable: false,
      });
    }
    const name = formatReference(ref);
    const work = this.#resolve(ref, name, opts).then((rec) => {
      this.store.addSandboxRef(opts.sandbox.id, rec);
      return rec;
    });
    this.#preparing.add(work);
    const rec = await work.finally(() => this.#preparing.delete(work));
    return {
      reference: name,
      imageID: `${rec.repository}@${rec.manifestDigest}`,
      layers: rec.chainIDs.map((c) => this.store.layerPath(c)),
      config: rec.config,
    };
  }

  async release(sandbox: SandboxId): Promise<void> {
    this.store.removeSandboxRefs(sandbox);
  }

  /** Sandboxes holding image references on disk (the agent's GC releases those the runtime no longer knows). */
  sandboxesHolding(): SandboxId[] {
    return this.store.sandboxesHolding();
  }

  /** Removes everything no image record, sandbox or in-flight pull uses. */
  async collectGarbage(opts: { pruneImages?: boolean } = {}): Promise<ReturnType<ContentStore['collectGarbage']>> {
    // Image records are cache roots; sandbox references carry their own copy, so
    // pruning the records leaves exactly what running sandboxes hold.
    // A prepare between "pulled" and "sandbox reference written" holds no root yet: wait for those.
    while (this.#preparing.size) await Promise.allSettled([...this.#preparing]);
    if (opts.pruneImages) for (const img of this.store.listImages()) this.store.removeImage(img.reference);
    return this.store.collectGarbage();
  }

  diskUsage() {
    return this.store.diskUsage();
  }

  async #resolve(ref: ImageReference, name: string, opts: PullOptions): Promise<ImageRecord> {
    const cached = this.store.readImage(name);
    const present = cached && this.store.complete(cached) ? cached : undefined;
    switch (cacheDecision(opts.policy, present?.topDigest, ref.digest)) {
      case 'cached':
        return present!;
      case 'missing':
        throw new ImageError({
          reason: 'ErrImageNeverPull',
          step: 'pull',
          sandbox: opts.sandbox.id,
          message: `image ${name} is not present and imagePullPolicy is Never`,
          hint: 'pre-load the image on the node or change imagePullPolicy',
          retryable: false,
        });
      case 'pull':
        break;
    }
    const failures = this.#backoff.admit(name, opts.sandbox.id);
    const creds = credentialsFor(opts.credentials, ref.domain, ref.path);
    try {
      const rec = await this.#pullFlight.do(name, () => this.#puller.pull(ref, name, creds, present));
      this.#backoff.succeeded(name);
      return rec;
    } catch (err) {
      throw this.#backoff.failed(name, failures, err);
    }
  }
}
