import assert from 'node:assert/strict';
import { ImageError } from './errors.js';
import { manifestForPlatform, selectManifest, type IndexEntry } from './platform.js';

const e = (architecture: string, variant?: string, os = 'linux', extra: Partial<IndexEntry> = {}): IndexEntry => ({
  digest: `sha256:${architecture}${variant ?? ''}${os}`,
  size: 1,
  platform: { os, architecture, ...(variant ? { variant } : {}) },
  ...extra,
});

describe('unit: images: platform selection', () => {
  it('picks the exact platform', () => {
    const idx = [e('arm64'), e('amd64'), e('arm', 'v7')];
    assert.equal(selectManifest(idx, { os: 'linux', architecture: 'amd64' })?.platform?.architecture, 'amd64');
  });
  it('treats arm64 with no variant as v8', () => {
    assert.ok(selectManifest([e('arm64', 'v8')], { os: 'linux', architecture: 'arm64' }));
    assert.ok(selectManifest([e('arm64')], { os: 'linux', architecture: 'aarch64', variant: 'v8' }));
  });
  it('falls back to older arm variants, never newer', () => {
    assert.equal(
      selectManifest([e('arm', 'v6'), e('arm', 'v5')], { os: 'linux', architecture: 'arm', variant: 'v7' })?.platform
        ?.variant,
      'v6',
    );
    assert.equal(selectManifest([e('arm', 'v7')], { os: 'linux', architecture: 'arm', variant: 'v6' }), undefined);
  });
  it('falls back from amd64 v3 to v2 and to 386', () => {
    assert.equal(
      selectManifest([e('amd64', 'v2')], { os: 'linux', architecture: 'amd64', variant: 'v3' })?.platform?.variant,
      'v2',
    );
    assert.equal(selectManifest([e('386')], { os: 'linux', architecture: 'amd64' })?.platform?.architecture, '386');
  });
  it('skips attestation manifests and other OSes', () => {
    const idx = [
      e('unknown', undefined, 'unknown'),
      e('amd64', undefined, 'linux', { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } }),
      e('amd64', undefined, 'windows'),
    ];
    assert.equal(selectManifest(idx, { os: 'linux', architecture: 'amd64' }), undefined);
  });
  it('refuses an index with nothing for the node, naming what it has, and an entry with an invalid digest', () => {
    const amd64 = { os: 'linux', architecture: 'amd64' };
    const good = { ...e('amd64'), digest: `sha256:${'a'.repeat(64)}` };
    assert.equal(manifestForPlatform([e('arm64', 'v8'), good], amd64, 'r/app:1'), good);
    const refused = (entries: IndexEntry[], message: string) =>
      assert.throws(
        () => manifestForPlatform(entries, amd64, 'r/app:1'),
        (err: unknown) =>
          err instanceof ImageError &&
          err.reason === 'ErrImagePull' &&
          !err.retryable &&
          err.message === `select platform: ${message}`,
      );
    refused(
      [e('arm64', 'v8'), e('arm', 'v7')],
      'no manifest for linux/amd64 in r/app:1 (has linux/arm64/v8, linux/arm/v7)',
    );
    refused([e('amd64')], 'invalid digest in index: sha256:amd64linux');
  });
});
