import assert from 'node:assert/strict';
import { chainIDs } from './manifest.js';
import { MEDIA, manifestMediaType } from './manifest-media.js';

const doc = (o: object) => Buffer.from(JSON.stringify(o));

describe('unit: images: manifest media types and ChainIDs', () => {
  it('takes the media type from Content-Type and the document, which must agree', () => {
    assert.equal(
      manifestMediaType(MEDIA.ociManifest, doc({ mediaType: MEDIA.ociManifest, layers: [] })),
      MEDIA.ociManifest,
    );
    assert.equal(
      manifestMediaType('application/json', doc({ mediaType: MEDIA.dockerList, manifests: [] })),
      MEDIA.dockerList,
    );
    assert.equal(manifestMediaType('', doc({ schemaVersion: 2, layers: [] })), MEDIA.ociManifest);
    assert.throws(
      () => manifestMediaType(MEDIA.ociIndex, doc({ mediaType: MEDIA.ociManifest, layers: [] })),
      /does not match/,
    );
  });
  it('refuses ambiguous documents (CVE-2021-41190) and shapes that contradict the type', () => {
    assert.throws(() => manifestMediaType(MEDIA.ociManifest, doc({ manifests: [], layers: [] })), /ambiguous/);
    assert.throws(() => manifestMediaType(MEDIA.ociIndex, doc({ layers: [] })), /shape/);
  });
  it('refuses Docker schema 1 and non-JSON bodies', () => {
    assert.throws(
      () =>
        manifestMediaType(
          'application/vnd.docker.distribution.manifest.v1+prettyjws',
          doc({ schemaVersion: 1, fsLayers: [] }),
        ),
      /schema 1/,
    );
    assert.throws(() => manifestMediaType(MEDIA.ociManifest, Buffer.from('<html>')), /not JSON/);
  });
  it('computes ChainIDs as the image spec defines them', () => {
    const a = `sha256:${'a'.repeat(64)}`;
    const b = `sha256:${'b'.repeat(64)}`;
    const [c0, c1] = chainIDs([a, b]);
    assert.equal(c0, a);
    // sha256("sha256:aaa… sha256:bbb…"), computed with sha256sum.
    assert.equal(c1, 'sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c');
  });
});
