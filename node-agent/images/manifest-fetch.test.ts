import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ImageError } from './errors.js';
import { verifyManifest } from './manifest-fetch.js';
import { MEDIA } from './manifest-media.js';

const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, layers: [] }));
const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
const other = `sha256:${'0'.repeat(64)}`;

describe('unit: images: manifest verification', () => {
  it('accepts a body that matches the digest asked for and the one claimed, and names its type', () => {
    assert.deepEqual(verifyManifest(body, digest, digest, `${MEDIA.ociManifest}; charset=utf-8`), {
      mediaType: MEDIA.ociManifest,
      digest,
      body,
    });
    assert.equal(verifyManifest(body, 'latest', undefined, undefined).digest, digest);
    // A claim that is not a digest is not checked.
    assert.equal(verifyManifest(body, 'latest', 'md5:abc', MEDIA.ociManifest).digest, digest);
  });
  const refused: [what: string, tagOrDigest: string, claimed: string | undefined, message: RegExp][] = [
    [
      'a body that is not the digest asked for',
      other,
      undefined,
      /manifest digest sha256:\w+ does not match sha256:0+$/,
    ],
    ['a wrong Docker-Content-Digest', 'latest', other, /Docker-Content-Digest sha256:0+ does not match the body/],
  ];
  for (const [what, tagOrDigest, claimed, message] of refused) {
    it(`refuses ${what}`, () => {
      assert.throws(
        () => verifyManifest(body, tagOrDigest, claimed, MEDIA.ociManifest),
        (e: unknown) =>
          e instanceof ImageError && e.step === 'verify manifest' && !e.retryable && message.test(e.message),
      );
    });
  }
});
