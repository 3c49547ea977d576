import { createHash, type Hash } from 'node:crypto';
import { closeSync, constants, ftruncateSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ImageError } from './errors.js';
import type { Descriptor } from './manifest.js';
import { DIGEST_RE } from './reference.js';
import { errorFor } from './registry-errors.js';
import { header, RetryableError, type RegistryResponse } from './registry-http.js';
import type { RetryPolicy } from './registry-retry.js';

/*
 * A blob download into an ingest file that survives interruption: what is
 * already there is re-hashed and the rest asked for with Range, so a cut
 * connection or an agent restart costs only the bytes not yet written. Every
 * byte is hashed as it lands; the file holds the blob only once the digest matches.
 */

/** An authorised GET of the blob with these extra headers (Range). */
export type BlobGet = (headers: Record<string, string>) => Promise<RegistryResponse>;

/** Whether a 206's Content-Range starts where the ingest file ends. */
export function rangeStartsAt(contentRange: string, offset: number): boolean {
  const m = /^bytes (\d+)-/.exec(contentRange);
  return !!m && Number(m[1]) === offset;
}

/** Hashes the first `have` bytes a previous attempt left in `fd`; returns how many it read. */
function rehash(fd: number, have: number, hash: Hash): number {
  const buf = Buffer.alloc(1024 * 1024);
  let offset = 0;
  while (offset < have) {
    const got = readSync(fd, buf, 0, Math.min(buf.length, have - offset), offset);
    if (got <= 0) break;
    hash.update(buf.subarray(0, got));
    offset += got;
  }
  return offset;
}

/**
 * Downloads `desc` into `ingestPath`, resuming from what is already there,
 * verifying size and digest. Returns when the file holds exactly the blob.
 * While bytes arrive a failed attempt is retried at once; `policy.maxRetries`
 * attempts in a row without progress end the download.
 */
export async function downloadBlob(
  get: BlobGet,
  desc: Descriptor,
  ingestPath: string,
  policy: RetryPolicy,
  onBytes?: (n: number) => void,
): Promise<void> {
  if (!DIGEST_RE.test(desc.digest))
    throw new ImageError({
      reason: 'ErrImagePull',
      step: 'pull',
      message: `invalid digest ${desc.digest}`,
      retryable: false,
    });
  // Not O_APPEND: Linux pwrite ignores the offset on O_APPEND fds.
  const fd = openSync(ingestPath, constants.O_RDWR | constants.O_CREAT, 0o600);
  try {
    let hash = createHash('sha256');
    // Re-hash what a previous attempt left, so resuming survives an agent restart.
    const have = Math.min(statSync(ingestPath).size, desc.size);
    ftruncateSync(fd, have);
    let offset = rehash(fd, have, hash);
    let stalls = 0;
    while (offset < desc.size) {
      const before = offset;
      try {
        const range: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
        const r = await get(range);
        if (r.status === 206 && offset > 0) {
          const cr = header(r, 'content-range') ?? '';
          if (!rangeStartsAt(cr, offset)) {
            await r.body.dump();
            throw new RetryableError(`bad Content-Range ${JSON.stringify(cr)} for offset ${offset}`);
          }
        } else if (r.status === 200) {
          if (offset > 0) {
            // The server ignored Range and sends the whole blob: start over rather than append a second copy.
            ftruncateSync(fd, 0);
            offset = 0;
            hash = createHash('sha256');
          }
        } else {
          throw await errorFor(r, `blob ${desc.digest}`);
        }
        for await (const chunk of r.body) {
          const c = chunk as Buffer;
          if (offset + c.length > desc.size) {
            r.body.destroy();
            throw new ImageError({
              reason: 'ErrImagePull',
              step: 'verify blob',
              message: `blob ${desc.digest} is larger than its descriptor size ${desc.size}`,
              retryable: false,
            });
          }
          writeSync(fd, c, 0, c.length, offset);
          hash.update(c);
          offset += c.length;
          onBytes?.(c.length);
        }
        if (offset < desc.size) throw new RetryableError('connection closed before the end of the blob');
      } catch (err) {
        if (err instanceof ImageError) throw err;
        // Retry immediately while progress is made; back off when it is not.
        if (offset === before) stalls++;
        if (stalls > policy.maxRetries) {
          throw new ImageError({
            reason: 'ErrImagePull',
            step: 'pull',
            message: `blob ${desc.digest}: ${(err as Error).message}`,
            cause: err,
          });
        }
        policy.log?.debug({ digest: desc.digest, offset, err: (err as Error).message }, 'resuming blob download');
        if (offset === before) await sleep(policy.retryDelayMs * 2 ** stalls);
      }
    }
    const digest = `sha256:${hash.digest('hex')}`;
    if (digest !== desc.digest) {
      ftruncateSync(fd, 0);
      throw new ImageError({
        reason: 'ErrImagePull',
        step: 'verify blob',
        message: `blob content is ${digest}, expected ${desc.digest}`,
        hint: 'the registry served corrupted data',
        retryable: false,
      });
    }
  } finally {
    closeSync(fd);
  }
}
