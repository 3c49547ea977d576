import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { ImageConfig } from '../contracts.js';
import { DIGEST_RE } from './reference.js';

/*
 * The content store on disk, containerd-style:
 *   blobs/sha256/<hex>          immutable, verified blobs (manifests, configs, layers)
 *   ingest/<hex>                partial downloads, resumable, renamed into blobs/ when verified
 *   layers/<chainhex>/          one unpacked layer per ChainID, shared by every image that has it
 *   images/<key>.json           what a reference resolved to (the roots for cached images)
 *   sandboxes/<id>/<key>.json   what each sandbox holds (roots that outlive a re-tag)
 * GC marks from images/ and sandboxes/ and sweeps everything else, except
 * what an in-flight pull has leased.
 */

export interface ImageRecord {
  reference: string;
  /** Digest the reference resolved to (index or manifest). */
  topDigest: string;
  manifestDigest: string;
  configDigest: string;
  /** Every blob the image needs: index, manifest, config, layers. */
  blobs: string[];
  chainIDs: string[];
  config: ImageConfig;
  repository: string;
}

const hexOf = (digest: string) => {
  if (!DIGEST_RE.test(digest)) throw new Error(`invalid digest ${digest}`);
  return digest.slice('sha256:'.length);
};

export const recordKey = (reference: string) => createHash('sha256').update(reference).digest('hex').slice(0, 32);

function writeAtomic(path: string, data: string | Buffer): void {
  const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

export class ContentStore {
  readonly root: string;
  /** Digests and chain IDs an in-flight pull is using; GC leaves them alone. */
  readonly #leases = new Map<string, number>();

  constructor(root: string) {
    this.root = root;
    for (const d of ['blobs/sha256', 'ingest', 'layers', 'images', 'sandboxes'])
      mkdirSync(join(root, d), { recursive: true, mode: 0o700 });
  }

  blobPath(digest: string): string {
    return join(this.root, 'blobs/sha256', hexOf(digest));
  }
  ingestPath(digest: string): string {
    return join(this.root, 'ingest', hexOf(digest));
  }
  layerPath(chainID: string): string {
    return join(this.root, 'layers', hexOf(chainID));
  }
  hasBlob(digest: string): boolean {
    return existsSync(this.blobPath(digest));
  }
  hasLayer(chainID: string): boolean {
    return existsSync(this.layerPath(chainID));
  }

  /** Moves a verified ingest file into blobs/ (atomic rename on one filesystem). */
  commitIngest(digest: string): void {
    renameSync(this.ingestPath(digest), this.blobPath(digest));
  }

  writeBlob(digest: string, data: Buffer): void {
    if (!this.hasBlob(digest)) writeAtomic(this.blobPath(digest), data);
  }

  readBlob(digest: string): Buffer {
    return readFileSync(this.blobPath(digest));
  }

  /** A fresh directory to unpack a layer into; commitLayer renames it into place. */
  stagingLayerDir(chainID: string): string {
    const dir = join(this.root, 'layers', `.tmp-${hexOf(chainID)}-${randomBytes(4).toString('hex')}`);
    mkdirSync(dir, { mode: 0o755 });
    return dir;
  }

  commitLayer(staging: string, chainID: string): void {
    try {
      renameSync(staging, this.layerPath(chainID));
    } catch (err) {
      // Someone else committed the same chain first; theirs is identical.
      if (this.hasLayer(chainID)) rmSync(staging, { recursive: true, force: true });
      else throw err;
    }
  }

  lease(ids: string[]): () => void {
    for (const id of ids) this.#leases.set(id, (this.#leases.get(id) ?? 0) + 1);
    return () => {
      for (const id of ids) {
        const n = (this.#leases.get(id) ?? 1) - 1;
        if (n <= 0) this.#leases.delete(id);
        else this.#leases.set(id, n);
      }
    };
  }

  readImage(reference: string): ImageRecord | undefined {
    const p = join(this.root, 'images', `${recordKey(reference)}.json`);
    if (!existsSync(p)) return undefined;
    return JSON.parse(readFileSync(p, 'utf8')) as ImageRecord;
  }

  writeImage(rec: ImageRecord): void {
    writeAtomic(join(this.root, 'images', `${recordKey(rec.reference)}.json`), JSON.stringify(rec));
  }

  removeImage(reference: string): void {
    rmSync(join(this.root, 'images', `${recordKey(reference)}.json`), { force: true });
  }

  listImages(): ImageRecord[] {
    return this.#readRecords(join(this.root, 'images'));
  }

  /** True when every blob and layer of the record is still on disk. */
  complete(rec: ImageRecord): boolean {
    return (
      rec.chainIDs.every((c) => this.hasLayer(c)) &&
      [rec.manifestDigest, rec.configDigest].every((d) => this.hasBlob(d))
    );
  }

  addSandboxRef(sandbox: string, rec: ImageRecord): void {
    const dir = join(this.root, 'sandboxes', sandbox);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeAtomic(join(dir, `${recordKey(rec.reference)}.json`), JSON.stringify(rec));
  }

  removeSandboxRefs(sandbox: string): void {
    rmSync(join(this.root, 'sandboxes', sandbox), { recursive: true, force: true });
  }

  sandboxesHolding(): string[] {
    return readdirSync(join(this.root, 'sandboxes'));
  }

  #readRecords(dir: string): ImageRecord[] {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as ImageRecord);
  }

  /**
   * Mark and sweep: keeps what image records, sandbox references and leases
   * name; removes every other blob, layer, ingest file and staging dir.
   */
  collectGarbage(): { blobs: string[]; layers: string[]; ingest: string[] } {
    const roots = [...this.listImages()];
    for (const s of this.sandboxesHolding()) roots.push(...this.#readRecords(join(this.root, 'sandboxes', s)));
    const keepBlobs = new Set<string>();
    const keepLayers = new Set<string>();
    for (const r of roots) {
      for (const b of [r.topDigest, r.manifestDigest, r.configDigest, ...r.blobs]) keepBlobs.add(hexOf(b));
      for (const c of r.chainIDs) keepLayers.add(hexOf(c));
    }
    const leased = new Set([...this.#leases.keys()].map((d) => d.slice('sha256:'.length)));
    const removed = { blobs: [] as string[], layers: [] as string[], ingest: [] as string[] };
    for (const f of readdirSync(join(this.root, 'blobs/sha256'))) {
      if (keepBlobs.has(f) || leased.has(f)) continue;
      rmSync(join(this.root, 'blobs/sha256', f), { force: true });
      removed.blobs.push(`sha256:${f}`);
    }
    for (const f of readdirSync(join(this.root, 'ingest'))) {
      if (leased.has(f)) continue;
      rmSync(join(this.root, 'ingest', f), { force: true });
      removed.ingest.push(f);
    }
    for (const f of readdirSync(join(this.root, 'layers'))) {
      const m = /^\.tmp-([0-9a-f]{64})-/.exec(f);
      if (m ? leased.has(m[1]!) : keepLayers.has(f) || leased.has(f)) continue;
      rmSync(join(this.root, 'layers', f), { recursive: true, force: true });
      if (!m) removed.layers.push(`sha256:${f}`);
    }
    return removed;
  }

  /** Bytes on disk (allocated blocks, hardlinked inodes counted once). */
  diskUsage(): { blobs: number; layers: number; total: number } {
    const seen = new Set<string>();
    const walk = (p: string): number => {
      const st = lstatSync(p, { bigint: true });
      const id = `${st.dev}:${st.ino}`;
      let n = 0;
      if (!seen.has(id)) {
        seen.add(id);
        n += Number(st.blocks) * 512;
      }
      if (st.isDirectory()) for (const c of readdirSync(p)) n += walk(join(p, c));
      return n;
    };
    const blobs = walk(join(this.root, 'blobs')) + walk(join(this.root, 'ingest'));
    const layers = walk(join(this.root, 'layers'));
    return { blobs, layers, total: blobs + layers };
  }

  ingestSize(digest: string): number {
    try {
      return statSync(this.ingestPath(digest)).size;
    } catch {
      return 0;
    }
  }
}
