import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { applyLayer, DEFAULT_APPLY_LIMITS, type ApplyLimits, type ApplyResult } from './applier.js';
import { ImageError, LayerRefusedError } from './errors.js';
import type { Logger } from '../../lib/log.js';

/*
 * Decompression and DiffID verification around the applier. The uncompressed
 * stream is hashed as it is applied, so a layer whose DiffID does not match
 * the image config is discarded before it is ever committed.
 */

export type Compression = 'gzip' | 'zstd' | 'none';

const ZSTD = '/usr/bin/zstd';

/** Layer media type → compression; undefined for media types that are not layers we can apply. */
export function compressionOf(mediaType: string): Compression | undefined {
  switch (mediaType) {
    case 'application/vnd.oci.image.layer.v1.tar':
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar':
      return 'none';
    case 'application/vnd.oci.image.layer.v1.tar+gzip':
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip':
    case 'application/vnd.docker.image.rootfs.diff.tar.gzip':
    case 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip':
      return 'gzip';
    case 'application/vnd.oci.image.layer.v1.tar+zstd':
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd':
      return 'zstd';
    default:
      return undefined;
  }
}

/**
 * Node 20's zlib has no zstd (it arrives in 22.15), so zstd layers go through
 * the zstd(1) binary when it is installed; otherwise they are refused.
 */
export const zstdAvailable = () => existsSync(ZSTD);

export interface UnpackLimits extends ApplyLimits {
  /** Refuse when uncompressed bytes exceed ratio × compressed size (past ratioFloorBytes). */
  maxRatio: number;
  ratioFloorBytes: number;
}

export const DEFAULT_UNPACK_LIMITS: UnpackLimits = {
  ...DEFAULT_APPLY_LIMITS,
  maxRatio: 100,
  ratioFloorBytes: 64 * 1024 * 1024,
};

function decompress(src: Readable, compression: Compression, onError: (e: Error) => void): AsyncIterable<Buffer> {
  if (compression === 'none') return src;
  if (compression === 'gzip') {
    const gunzip = createGunzip({ chunkSize: 256 * 1024 });
    pipeline(src, gunzip, (e) => e && onError(e));
    return gunzip;
  }
  if (!zstdAvailable()) {
    throw new ImageError({
      reason: 'ErrImagePull',
      step: 'unpack layer',
      message: 'zstd layers need /usr/bin/zstd (Node 20 has no zstd in zlib)',
      hint: 'install the zstd package on the node',
      retryable: false,
    });
  }
  const child = spawn(ZSTD, ['-dcq'], { stdio: ['pipe', 'pipe', 'inherit'] });
  pipeline(src, child.stdin, (e) => e && onError(e));
  child.on('exit', (code) => code && onError(new Error(`zstd exited with ${code}`)));
  return child.stdout;
}

/**
 * Unpacks the blob at `blobPath` into the empty directory `dir` and checks the
 * DiffID. Throws LayerRefusedError or ImageError; `dir` is then left for the
 * caller to remove.
 */
export async function unpackLayer(opts: {
  blobPath: string;
  compressedSize: number;
  compression: Compression;
  diffID: string;
  dir: string;
  lowerDirs: string[];
  limits: UnpackLimits;
  log?: Logger;
}): Promise<ApplyResult & { bytes: number }> {
  const { limits } = opts;
  let streamError: Error | undefined;
  const src = createReadStream(opts.blobPath, { highWaterMark: 1024 * 1024 });
  const raw = decompress(src, opts.compression, (e) => (streamError ??= e));
  const hash = createHash('sha256');
  let bytes = 0;
  const ratioCap = Math.max(limits.ratioFloorBytes, limits.maxRatio * opts.compressedSize);
  const counted = async function* () {
    for await (const chunk of raw) {
      bytes += chunk.length;
      if (bytes > limits.maxBytes)
        throw new LayerRefusedError('#stream', `layer expands past ${limits.maxBytes} bytes`);
      if (bytes > ratioCap) {
        throw new LayerRefusedError(
          '#stream',
          `decompression bomb: ${bytes} bytes from ${opts.compressedSize} compressed (limit ratio ${limits.maxRatio})`,
        );
      }
      hash.update(chunk);
      yield chunk as Buffer;
    }
    if (streamError) throw streamError;
  };
  let result: ApplyResult;
  try {
    result = await applyLayer(counted(), opts.dir, { limits, lowerDirs: opts.lowerDirs, log: opts.log });
  } catch (err) {
    src.destroy();
    if (err instanceof ImageError) throw err;
    throw new ImageError({
      reason: 'ErrImagePull',
      step: 'unpack layer',
      message: `decompressing layer: ${(err as Error).message}`,
      retryable: false,
      cause: err,
    });
  }
  const got = `sha256:${hash.digest('hex')}`;
  if (got !== opts.diffID) {
    throw new ImageError({
      reason: 'ErrImagePull',
      step: 'unpack layer',
      message: `diff_id mismatch: config says ${opts.diffID}, layer content is ${got}`,
      hint: 'the image config does not describe its layers; the image is corrupt',
      retryable: false,
    });
  }
  return { ...result, bytes };
}
