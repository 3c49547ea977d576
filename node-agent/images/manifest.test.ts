import assert from 'node:assert/strict';
import { ImageError } from './errors.js';
import { chainIDs, diffIDsOf, imageConfigOf, type OciManifest } from './manifest.js';
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
  it('takes one valid DiffID per layer from the config, or refuses the pull', () => {
    const d = (c: string) => `sha256:${c.repeat(64)}`;
    const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: d('1'), size: 1 };
    const m: OciManifest = { config: { mediaType: 'x', digest: d('0'), size: 1 }, layers: [layer, layer] };
    assert.deepEqual(diffIDsOf({ rootfs: { diff_ids: [d('a'), d('b')] } }, m), [d('a'), d('b')]);
    const refused = (cfg: object, message: string) =>
      assert.throws(
        () => diffIDsOf(cfg, m),
        (e: unknown) => e instanceof ImageError && e.step === 'parse config' && e.detail === message,
      );
    refused({}, 'config has 0 diff_ids for 2 layers');
    refused({ rootfs: { diff_ids: [d('a')] } }, 'config has 1 diff_ids for 2 layers');
    refused({ rootfs: { diff_ids: [d('a'), 'md5:b'] } }, 'config has 2 diff_ids for 2 layers');
  });
  it('keeps the config fields the runtime reads, leaving out empty ones', () => {
    assert.deepEqual(imageConfigOf({}), {});
    assert.deepEqual(
      imageConfigOf({ config: { Entrypoint: null, Cmd: ['sh'], Env: ['A=1'], WorkingDir: '', User: '1' } }),
      {
        cmd: ['sh'],
        env: ['A=1'],
        user: '1',
      },
    );
    assert.deepEqual(imageConfigOf({ config: { Entrypoint: ['/init'], WorkingDir: '/app' } }), {
      entrypoint: ['/init'],
      workingDir: '/app',
    });
  });
});
