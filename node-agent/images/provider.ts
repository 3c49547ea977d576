import { rmSync } from 'node:fs';
import { createLogger, type Logger } from '../../lib/log.js';
import type { ImageConfig, ImageProvider, PreparedImage, PullOptions, SandboxId } from '../contracts.js';
import { credentialsFor, type Credential } from './auth.js';
import { ImageError } from './errors.js';
import { hostPlatform, selectManifest, type IndexEntry, type Platform } from './platform.js';
import { formatReference, InvalidReferenceError, parseReference, DIGEST_RE, type ImageReference } from './reference.js';
import { MEDIA } from './manifest-media.js';
import { chainIDs, validateManifest, type Descriptor, type OciConfig, type OciManifest } from './manifest.js';
import { Semaphore, SingleFlight } from './concurrency.js';
import { RegistryClient, type RegistryClientOptions } from './registry.js';
import { ContentStore, type ImageRecord } from './store.js';
import { compressionOf, DEFAULT_UNPACK_LIMITS, unpackLayer, type UnpackLimits } from './unpack.js';

/*
 * The ImageProvider the runtime uses: resolve, download (bounded, one fetch
 * per blob however many sandboxes ask), unpack once per ChainID, and hold
 * references per sandbox until release().
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

/** Counters for tests and metrics. */
export interface PullStats {
  bytesDownloaded: number;
  blobsDownloaded: number;
  layersUnpacked: number;
  manifestRequests: number;
}

export class OciImageProvider implements ImageProvider {
  readonly store: ContentStore;
  readonly stats: PullStats = { bytesDownloaded: 0, blobsDownloaded: 0, layersUnpacked: 0, manifestRequests: 0 };
  readonly #client: RegistryClient;
  readonly #platform: Platform;
  readonly #downloads: Semaphore;
  readonly #limits: UnpackLimits;
  readonly #log: Logger;
  readonly #blobFlight = new SingleFlight<void>();
  readonly #layerFlight = new SingleFlight<void>();
  readonly #pullFlight = new SingleFlight<ImageRecord>();
  readonly #backoff = new Map<string, { failures: number; until: number; error: ImageError }>();
  readonly #backoffMs: { initial: number; max: number };
  readonly #preparing = new Set<Promise<ImageRecord>>();

  constructor(opts: OciImageProviderOptions) {
    this.store = new ContentStore(opts.root);
    this.#log = opts.log ?? createLogger('images');
    this.#client = new RegistryClient({ ...opts.registry, log: this.#log });
    this.#platform = opts.platform ?? hostPlatform();
    this.#downloads = new Semaphore(opts.concurrentDownloads ?? 3);
    this.#limits = { ...DEFAULT_UNPACK_LIMITS, ...opts.limits };
    this.#backoffMs = opts.backoffMs ?? { initial: 10_000, max: 300_000 };
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
    if (opts.policy === 'Never') {
      if (present) return present;
      throw new ImageError({
        reason: 'ErrImageNeverPull',
        step: 'pull',
        sandbox: opts.sandbox.id,
        message: `image ${name} is not present and imagePullPolicy is Never`,
        hint: 'pre-load the image on the node or change imagePullPolicy',
        retryable: false,
      });
    }
    if (opts.policy === 'IfNotPresent' && present) return present;
    // A pinned digest that is present needs no round trip even under Always.
    if (present && ref.digest && present.topDigest === ref.digest) return present;

    const b = this.#backoff.get(name);
    if (b && b.until > Date.now()) {
      throw new ImageError({
        reason: 'ImagePullBackOff',
        step: 'pull',
        sandbox: opts.sandbox.id,
        message: `back-off pulling ${name} (${b.failures} failures); last error: ${b.error.message}`,
        hint: b.error.hint,
        retryable: true,
      });
    }
    const creds = credentialsFor(opts.credentials, ref.domain, ref.path);
    try {
      const rec = await this.#pullFlight.do(name, () => this.#pull(ref, name, creds, present));
      this.#backoff.delete(name);
      return rec;
    } catch (err) {
      const e =
        err instanceof ImageError
          ? err
          : new ImageError({ reason: 'ErrImagePull', step: 'pull', message: (err as Error).message, cause: err });
      const failures = (b?.failures ?? 0) + 1;
      const delay = Math.min(this.#backoffMs.max, this.#backoffMs.initial * 2 ** (failures - 1));
      this.#backoff.set(name, { failures, until: Date.now() + delay, error: e });
      throw e;
    }
  }

  async #pull(
    ref: ImageReference,
    name: string,
    creds: Credential[],
    present: ImageRecord | undefined,
  ): Promise<ImageRecord> {
    const log = this.#log.child({ image: name });
    this.stats.manifestRequests++;
    const top = await this.#client.getManifest(ref, ref.digest ?? ref.tag!, creds);
    // Warm path: the tag still points where it did, and everything is on disk.
    if (present && present.topDigest === top.digest) return present;

    const release = this.store.lease([top.digest]);
    try {
      this.store.writeBlob(top.digest, top.body);
      let manifest = top;
      if (top.mediaType === MEDIA.ociIndex || top.mediaType === MEDIA.dockerList) {
        const index = JSON.parse(top.body.toString('utf8')) as { manifests: IndexEntry[] };
        const pick = selectManifest(index.manifests ?? [], this.#platform);
        if (!pick) {
          const have = (index.manifests ?? []).map(
            (m) =>
              `${m.platform?.os}/${m.platform?.architecture}${m.platform?.variant ? `/${m.platform.variant}` : ''}`,
          );
          throw new ImageError({
            reason: 'ErrImagePull',
            step: 'select platform',
            message: `no manifest for ${this.#platform.os}/${this.#platform.architecture} in ${name} (has ${have.join(', ')})`,
            retryable: false,
          });
        }
        if (!DIGEST_RE.test(pick.digest))
          throw new ImageError({
            reason: 'ErrImagePull',
            step: 'select platform',
            message: `invalid digest in index: ${pick.digest}`,
            retryable: false,
          });
        this.stats.manifestRequests++;
        manifest = await this.#client.getManifest(ref, pick.digest, creds);
        if (manifest.mediaType === MEDIA.ociIndex || manifest.mediaType === MEDIA.dockerList) {
          throw new ImageError({
            reason: 'ErrImagePull',
            step: 'select platform',
            message: 'nested indexes are not supported',
            retryable: false,
          });
        }
        this.store.writeBlob(manifest.digest, manifest.body);
      }
      const m = JSON.parse(manifest.body.toString('utf8')) as OciManifest;
      validateManifest(m);
      const configBlob = await this.#blob(ref, m.config, creds);
      const cfg = JSON.parse(configBlob.toString('utf8')) as OciConfig;
      const diffIDs = cfg.rootfs?.diff_ids ?? [];
      if (diffIDs.length !== m.layers.length || !diffIDs.every((d) => DIGEST_RE.test(d))) {
        throw new ImageError({
          reason: 'ErrImagePull',
          step: 'parse config',
          message: `config has ${diffIDs.length} diff_ids for ${m.layers.length} layers`,
          retryable: false,
        });
      }
      const chains = chainIDs(diffIDs);
      const releaseContent = this.store.lease([
        manifest.digest,
        m.config.digest,
        ...m.layers.map((l) => l.digest),
        ...chains,
      ]);
      try {
        // Downloads run in parallel (bounded); unpacking goes in order because each layer checks its lowers.
        const downloads = m.layers.map((l, i) =>
          this.store.hasLayer(chains[i]!) ? Promise.resolve() : this.#fetchBlob(ref, l, creds).then(() => undefined),
        );
        // Avoid unhandled rejections while earlier layers unpack.
        for (const d of downloads) d.catch(() => undefined);
        for (let i = 0; i < m.layers.length; i++) {
          await downloads[i];
          await this.#layer(m.layers[i]!, diffIDs[i]!, chains.slice(0, i + 1), log);
        }
        await Promise.all(downloads);
      } finally {
        releaseContent();
      }
      const c = cfg.config ?? {};
      const config: ImageConfig = {
        ...(c.Entrypoint ? { entrypoint: c.Entrypoint } : {}),
        ...(c.Cmd ? { cmd: c.Cmd } : {}),
        ...(c.Env ? { env: c.Env } : {}),
        ...(c.WorkingDir ? { workingDir: c.WorkingDir } : {}),
        ...(c.User ? { user: c.User } : {}),
      };
      const rec: ImageRecord = {
        reference: name,
        repository: `${ref.domain}/${ref.path}`,
        topDigest: top.digest,
        manifestDigest: manifest.digest,
        configDigest: m.config.digest,
        blobs: [...new Set([top.digest, manifest.digest, m.config.digest, ...m.layers.map((l) => l.digest)])],
        chainIDs: chains,
        config,
      };
      this.store.writeImage(rec);
      return rec;
    } finally {
      release();
    }
  }

  async #blob(ref: ImageReference, desc: Descriptor, creds: Credential[]): Promise<Buffer> {
    if (desc.size > 8 * 1024 * 1024)
      throw new ImageError({
        reason: 'ErrImagePull',
        step: 'pull',
        message: `config of ${desc.size} bytes is too large`,
        retryable: false,
      });
    await this.#fetchBlob(ref, desc, creds);
    return this.store.readBlob(desc.digest);
  }

  /** Makes the blob present in the store: one download per digest at a time, bounded in parallel. */
  #fetchBlob(ref: ImageReference, desc: Descriptor, creds: Credential[]): Promise<void> {
    if (this.store.hasBlob(desc.digest)) return Promise.resolve();
    return this.#blobFlight.do(desc.digest, () =>
      this.#downloads.run(async () => {
        if (this.store.hasBlob(desc.digest)) return;
        await this.#client.downloadBlob(ref, desc, this.store.ingestPath(desc.digest), creds, (n) => {
          this.stats.bytesDownloaded += n;
        });
        this.store.commitIngest(desc.digest);
        this.stats.blobsDownloaded++;
      }),
    );
  }

  #layer(desc: Descriptor, diffID: string, chain: string[], log: Logger): Promise<void> {
    const chainID = chain[chain.length - 1]!;
    if (this.store.hasLayer(chainID)) return Promise.resolve();
    return this.#layerFlight.do(chainID, async () => {
      if (this.store.hasLayer(chainID)) return;
      const compression = compressionOf(desc.mediaType)!;
      const dir = this.store.stagingLayerDir(chainID);
      try {
        const r = await unpackLayer({
          blobPath: this.store.blobPath(desc.digest),
          compressedSize: desc.size,
          compression,
          diffID,
          dir,
          lowerDirs: chain
            .slice(0, -1)
            .reverse()
            .map((c) => this.store.layerPath(c)),
          limits: this.#limits,
          log,
        });
        this.store.commitLayer(dir, chainID);
        this.stats.layersUnpacked++;
        log.debug({ chainID, entries: r.entries, bytes: r.bytes }, 'layer unpacked');
      } catch (err) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    });
  }
}
