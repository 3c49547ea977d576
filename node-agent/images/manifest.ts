import { createHash } from 'node:crypto';
import type { ImageConfig } from '../contracts.js';
import { ImageError } from './errors.js';
import { DIGEST_RE } from './reference.js';
import { compressionOf } from './unpack.js';

/** ChainID(L0) = DiffID(L0); ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(n)). */
export function chainIDs(diffIDs: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIDs) {
    const prev = out[out.length - 1];
    out.push(prev ? `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}` : d);
  }
  return out;
}

/** A content descriptor: what a manifest says about a blob it references. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** The fields of an image manifest the pull reads. */
export interface OciManifest {
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

/** The fields of an image config the pull reads. */
export interface OciConfig {
  config?: {
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Env?: string[] | null;
    WorkingDir?: string;
    User?: string;
  };
  rootfs?: { type?: string; diff_ids?: string[] };
}

/** Refuses a manifest the pull cannot trust or unpack, before any layer is fetched. */
export function validateManifest(m: OciManifest): void {
  const bad = (message: string) =>
    new ImageError({ reason: 'ErrImagePull', step: 'parse manifest', message, retryable: false });
  if (!m.config || !DIGEST_RE.test(m.config.digest) || !Number.isSafeInteger(m.config.size))
    throw bad('manifest has no valid config descriptor');
  if (!Array.isArray(m.layers)) throw bad('manifest has no layers');
  for (const l of m.layers) {
    if (!DIGEST_RE.test(l.digest)) throw bad(`invalid layer digest ${JSON.stringify(l.digest)}`);
    if (!Number.isSafeInteger(l.size) || l.size < 0) throw bad(`invalid layer size for ${l.digest}`);
    if (!compressionOf(l.mediaType)) throw bad(`unsupported layer media type ${l.mediaType}`);
  }
}

/** The layers' DiffIDs from the config: one valid digest per manifest layer, or the pull is refused. */
export function diffIDsOf(cfg: OciConfig, m: OciManifest): string[] {
  const diffIDs = cfg.rootfs?.diff_ids ?? [];
  if (diffIDs.length !== m.layers.length || !diffIDs.every((d) => DIGEST_RE.test(d))) {
    throw new ImageError({
      reason: 'ErrImagePull',
      step: 'parse config',
      message: `config has ${diffIDs.length} diff_ids for ${m.layers.length} layers`,
      retryable: false,
    });
  }
  return diffIDs;
}

/** What the runtime takes from an image config; fields the image leaves empty stay absent. */
export function imageConfigOf(cfg: OciConfig): ImageConfig {
  const c = cfg.config ?? {};
  return {
    ...(c.Entrypoint ? { entrypoint: c.Entrypoint } : {}),
    ...(c.Cmd ? { cmd: c.Cmd } : {}),
    ...(c.Env ? { env: c.Env } : {}),
    ...(c.WorkingDir ? { workingDir: c.WorkingDir } : {}),
    ...(c.User ? { user: c.User } : {}),
  };
}
