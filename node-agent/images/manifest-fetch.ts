import { createHash } from 'node:crypto';
import { ImageError } from './errors.js';
import { MEDIA, manifestMediaType } from './manifest-media.js';
import { DIGEST_RE } from './reference.js';
import { header, type RegistryResponse } from './registry-http.js';

/*
 * Reading a manifest or index off the wire: bounded in size before it is
 * parsed (a hostile registry cannot make the agent buffer gigabytes), and
 * verified against the digest asked for and the one the registry claims.
 */

/** The Accept header of a manifest request: every type `manifestMediaType` understands. */
export const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest].join(', ');

/** containerd's MaxManifestSize, quirk included (4 × 1048², not 4 MiB). */
const MAX_MANIFEST_BYTES = 4 * 1048 * 1048;

export interface FetchedManifest {
  mediaType: string;
  digest: string;
  body: Buffer;
}

const tooLarge = (message: string) =>
  new ImageError({ reason: 'ErrImagePull', step: 'pull', message, retryable: false });

const mismatch = (message: string) =>
  new ImageError({ reason: 'ErrImagePull', step: 'verify manifest', message, retryable: false });

/**
 * Checks a manifest body against what was asked for (`tagOrDigest`: a digest
 * must match) and what the registry claimed (Docker-Content-Digest), and
 * decides its media type. Pure, so every refusal has a table test.
 */
export function verifyManifest(
  body: Buffer,
  tagOrDigest: string,
  claimedDigest: string | undefined,
  contentType: string | undefined,
): FetchedManifest {
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  if (DIGEST_RE.test(tagOrDigest) && digest !== tagOrDigest)
    throw mismatch(`manifest digest ${digest} does not match ${tagOrDigest}`);
  if (claimedDigest && DIGEST_RE.test(claimedDigest) && claimedDigest !== digest)
    throw mismatch(`Docker-Content-Digest ${claimedDigest} does not match the body (${digest})`);
  const type = (contentType ?? '').split(';')[0]!.trim();
  return { mediaType: manifestMediaType(type, body), digest, body };
}

/** Reads the body of a 200 manifest response, refusing more than 4 MiB (declared or streamed), and verifies it. */
export async function readManifest(r: RegistryResponse, tagOrDigest: string): Promise<FetchedManifest> {
  const declared = Number(header(r, 'content-length') ?? '0');
  if (declared > MAX_MANIFEST_BYTES) {
    await r.body.dump();
    throw tooLarge(`manifest of ${declared} bytes exceeds ${MAX_MANIFEST_BYTES}`);
  }
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of r.body) {
    n += (chunk as Buffer).length;
    if (n > MAX_MANIFEST_BYTES) {
      r.body.destroy();
      throw tooLarge(`manifest exceeds ${MAX_MANIFEST_BYTES} bytes`);
    }
    parts.push(chunk as Buffer);
  }
  return verifyManifest(
    Buffer.concat(parts),
    tagOrDigest,
    header(r, 'docker-content-digest'),
    header(r, 'content-type'),
  );
}
