import type { Logger } from '../../lib/log.js';
import type { Credential } from './auth.js';
import type { ContentFetcher, PullStats } from './content-fetcher.js';
import { ImageError } from './errors.js';
import { MEDIA } from './manifest-media.js';
import { chainIDs, diffIDsOf, imageConfigOf, validateManifest, type OciConfig, type OciManifest } from './manifest.js';
import { manifestForPlatform, type IndexEntry, type Platform } from './platform.js';
import type { ImageReference } from './reference.js';
import type { FetchedManifest } from './manifest-fetch.js';
import type { RegistryClient } from './registry.js';
import type { ContentStore, ImageRecord } from './store.js';

/*
 * One pull, in the steps containerd takes: resolve the reference to a
 * manifest (through an index, for this node's platform), check the manifest
 * and its config, fetch and unpack the layers, write the image record. What
 * it reads is leased in the store until the record roots it, so a GC running
 * meanwhile cannot sweep it.
 */

const isIndex = (m: FetchedManifest) => m.mediaType === MEDIA.ociIndex || m.mediaType === MEDIA.dockerList;

export class ImagePuller {
  readonly #store: ContentStore;
  readonly #client: RegistryClient;
  readonly #content: ContentFetcher;
  readonly #platform: Platform;
  readonly #stats: PullStats;
  readonly #log: Logger;

  constructor(deps: {
    store: ContentStore;
    client: RegistryClient;
    content: ContentFetcher;
    platform: Platform;
    stats: PullStats;
    log: Logger;
  }) {
    this.#store = deps.store;
    this.#client = deps.client;
    this.#content = deps.content;
    this.#platform = deps.platform;
    this.#stats = deps.stats;
    this.#log = deps.log;
  }

  /** Pulls `ref` (normalised as `name`); `present` is the record on disk, returned as is when the tag has not moved. */
  async pull(
    ref: ImageReference,
    name: string,
    creds: Credential[],
    present: ImageRecord | undefined,
  ): Promise<ImageRecord> {
    const log = this.#log.child({ image: name });
    this.#stats.manifestRequests++;
    const top = await this.#client.getManifest(ref, ref.digest ?? ref.tag!, creds);
    // Warm path: the tag still points where it did, and everything is on disk.
    if (present && present.topDigest === top.digest) return present;

    const release = this.#store.lease([top.digest]);
    try {
      this.#store.writeBlob(top.digest, top.body);
      const manifest = isIndex(top) ? await this.#platformManifest(ref, name, top, creds) : top;
      const m = JSON.parse(manifest.body.toString('utf8')) as OciManifest;
      validateManifest(m);
      const configBlob = await this.#content.config(ref, m.config, creds);
      const cfg = JSON.parse(configBlob.toString('utf8')) as OciConfig;
      const diffIDs = diffIDsOf(cfg, m);
      const chains = chainIDs(diffIDs);
      await this.#layers(ref, creds, manifest.digest, m, diffIDs, chains, log);
      const rec: ImageRecord = {
        reference: name,
        repository: `${ref.domain}/${ref.path}`,
        topDigest: top.digest,
        manifestDigest: manifest.digest,
        configDigest: m.config.digest,
        blobs: [...new Set([top.digest, manifest.digest, m.config.digest, ...m.layers.map((l) => l.digest)])],
        chainIDs: chains,
        config: imageConfigOf(cfg),
      };
      this.#store.writeImage(rec);
      return rec;
    } finally {
      release();
    }
  }

  /** The manifest an index offers for this node's platform, fetched and stored. */
  async #platformManifest(
    ref: ImageReference,
    name: string,
    top: FetchedManifest,
    creds: Credential[],
  ): Promise<FetchedManifest> {
    const index = JSON.parse(top.body.toString('utf8')) as { manifests: IndexEntry[] };
    const pick = manifestForPlatform(index.manifests ?? [], this.#platform, name);
    this.#stats.manifestRequests++;
    const manifest = await this.#client.getManifest(ref, pick.digest, creds);
    if (isIndex(manifest)) {
      throw new ImageError({
        reason: 'ErrImagePull',
        step: 'select platform',
        message: 'nested indexes are not supported',
        retryable: false,
      });
    }
    this.#store.writeBlob(manifest.digest, manifest.body);
    return manifest;
  }

  /** Downloads run in parallel (bounded); unpacking goes in order because each layer checks its lowers. */
  async #layers(
    ref: ImageReference,
    creds: Credential[],
    manifestDigest: string,
    m: OciManifest,
    diffIDs: string[],
    chains: string[],
    log: Logger,
  ): Promise<void> {
    const release = this.#store.lease([manifestDigest, m.config.digest, ...m.layers.map((l) => l.digest), ...chains]);
    try {
      const downloads = m.layers.map((l, i) =>
        this.#store.hasLayer(chains[i]!) ? Promise.resolve() : this.#content.blob(ref, l, creds).then(() => undefined),
      );
      // Avoid unhandled rejections while earlier layers unpack.
      for (const d of downloads) d.catch(() => undefined);
      for (let i = 0; i < m.layers.length; i++) {
        await downloads[i];
        await this.#content.layer(m.layers[i]!, diffIDs[i]!, chains.slice(0, i + 1), log);
      }
      await Promise.all(downloads);
    } finally {
      release();
    }
  }
}
