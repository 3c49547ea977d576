import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sandboxIdFor, type PullOptions, type SandboxRef } from '../../node-agent/contracts.js';
import { ImageError } from '../../node-agent/images/errors.js';
import { OciImageProvider, type OciImageProviderOptions } from '../../node-agent/images/provider.js';
import { buildFixtures, layersOf, push } from '../harness/images/fixtures.js';
import {
  makeServerCert,
  makeSigningKey,
  startCuttingProxy,
  startRedirectingFront,
  startRegistry,
  startTokenServer,
  type TestRegistry,
} from '../harness/images/registry.js';

/*
 * Node tier: pulls from real docker-registry instances on 127.0.0.1 (open,
 * htpasswd, token auth) of images built with umoci and pushed with skopeo.
 * Needs root (layers keep ownership, device nodes and trusted.* xattrs).
 */

const sandbox = (name: string): SandboxRef => ({
  id: sandboxIdFor(`test/${name}`),
  namespace: 'test',
  name,
  uid: name,
});
const opts = (name: string, extra: Partial<PullOptions> = {}): PullOptions => ({
  policy: 'IfNotPresent',
  credentials: [],
  sandbox: sandbox(name),
  ...extra,
});
const dockerConfig = (host: string, user: string, password: string) =>
  JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } });

async function rejectsWith(p: Promise<unknown>, reason: string, re?: RegExp): Promise<ImageError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ImageError, `expected ImageError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    if (re) assert.match(err.message, re);
    return err;
  }
  assert.fail(`expected a ${reason} failure`);
}

/** Finds a path in the layer dirs, top-most first, like overlayfs would. */
function lookup(layers: string[], path: string): string | undefined {
  for (const l of [...layers].reverse()) if (existsSync(join(l, path))) return join(l, path);
  return undefined;
}

describe('node: images: pulls from local registries (root)', function () {
  this.timeout(240_000);
  let layout: string;
  let open: TestRegistry;
  let basic: TestRegistry;
  let token: TestRegistry;
  let tokenServer: Awaited<ReturnType<typeof startTokenServer>>;
  let tls: TestRegistry;
  let caPem: string;
  let work: string;
  const providers: OciImageProvider[] = [];
  const provider = (o: Partial<OciImageProviderOptions> = {}) => {
    const p = new OciImageProvider({
      root: mkdtempSync(join(work, 'store-')),
      registry: { plainHttpHosts: [open.host, basic.host, token.host], retryDelayMs: 20 },
      platform: { os: 'linux', architecture: 'amd64' },
      ...o,
    });
    providers.push(p);
    return p;
  };

  before(async function () {
    this.timeout(600_000);
    work = mkdtempSync(join(tmpdir(), 'sandpit-images-test-'));
    layout = buildFixtures();
    open = await startRegistry({ kind: 'none' });
    basic = await startRegistry({ kind: 'htpasswd', user: 'alice', password: 's3cret' });
    const key = makeSigningKey(work);
    tokenServer = await startTokenServer({
      ...key,
      issuer: 'sandpit-test',
      service: 'sandpit-registry',
      user: 'bob',
      password: 'hunter2',
    });
    token = await startRegistry({
      kind: 'token',
      realm: tokenServer.url,
      service: 'sandpit-registry',
      issuer: 'sandpit-test',
      certPath: key.certPath,
    });
    await push(layout, open.host, [
      { tag: 'busybox' },
      { tag: 'busybox', as: 'busybox-docker', docker: true },
      { tag: 'app1' },
      { tag: 'app2' },
      { tag: 'corrupt' },
      { tag: 'multi' },
      { tag: 'debian' },
    ]);
    await push(layout, basic.host, [{ tag: 'busybox' }], 'alice:s3cret');
    const cert = makeServerCert(work);
    caPem = cert.caPem;
    tls = await startRegistry({ kind: 'none' }, { tls: cert });
    await push(layout, tls.host, [{ tag: 'busybox' }]);
    await push(layout, token.host, [{ tag: 'busybox' }], 'bob:hunter2');
  });

  after(async () => {
    for (const p of providers) await p.close();
    await Promise.all([open?.stop(), basic?.stop(), token?.stop(), tokenServer?.stop(), tls?.stop()]);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('pulls an OCI image anonymously: layers unpacked, config kept, imageID pinned', async () => {
    const p = provider();
    const img = await p.prepare(`${open.host}/busybox`, opts('anon'));
    assert.equal(img.reference, `${open.host}/busybox:latest`);
    assert.match(img.imageID, new RegExp(`^${open.host}/busybox@sha256:[a-f0-9]{64}$`));
    assert.equal(img.layers.length, 1);
    const bb = lookup(img.layers, 'bin/busybox')!;
    assert.ok(statSync(bb).mode & 0o111, 'busybox is executable');
    assert.deepEqual(readFileSync(bb), readFileSync('/bin/busybox'));
    assert.deepEqual(img.config.cmd, ['/bin/sh']);
    assert.ok(img.config.env?.includes('FROM_IMAGE=1'));
  });

  it('pulls with basic auth from a pull secret, and says Unauthorized without or with a wrong one', async () => {
    const p = provider();
    await rejectsWith(p.prepare(`${basic.host}/busybox`, opts('basic-none')), 'Unauthorized', /anonymous/);
    await rejectsWith(
      p.prepare(
        `${basic.host}/busybox`,
        opts('basic-wrong', { credentials: [dockerConfig(basic.host, 'alice', 'nope')] }),
      ),
      'ImagePullBackOff',
    );
    const q = provider();
    await rejectsWith(
      q.prepare(
        `${basic.host}/busybox`,
        opts('basic-wrong', { credentials: [dockerConfig(basic.host, 'alice', 'nope')] }),
      ),
      'Unauthorized',
    );
    const r = provider();
    const img = await r.prepare(
      `${basic.host}/busybox`,
      opts('basic-ok', { credentials: [dockerConfig(basic.host, 'alice', 's3cret')] }),
    );
    assert.ok(lookup(img.layers, 'bin/busybox'));
  });

  it('pulls with bearer tokens from the token endpoint, caching the token per scope', async () => {
    const p = provider();
    await rejectsWith(p.prepare(`${token.host}/busybox`, opts('token-none')), 'Unauthorized');
    const q = provider();
    const before = tokenServer.requests.length;
    const creds = [dockerConfig(token.host, 'bob', 'hunter2')];
    const img = await q.prepare(`${token.host}/busybox`, opts('token-ok', { credentials: creds }));
    assert.ok(lookup(img.layers, 'bin/busybox'));
    const asked = tokenServer.requests.slice(before);
    assert.equal(asked.length, 1, 'one token for manifest, config and layer requests');
    assert.deepEqual(asked[0], { scope: ['repository:busybox:pull'], user: 'bob' });
  });

  it('asks for a new token when the registry answers insufficient_scope', async () => {
    const p = provider();
    const before = tokenServer.requests.length;
    tokenServer.starveNext(1);
    const img = await p.prepare(
      `${token.host}/busybox`,
      opts('token-scope', { credentials: [dockerConfig(token.host, 'bob', 'hunter2')] }),
    );
    assert.ok(lookup(img.layers, 'bin/busybox'));
    assert.equal(tokenServer.requests.length - before, 2, 'a starved token, then a good one');
  });

  it('speaks HTTPS to a registry whose certificate comes from a custom CA, and refuses it without the CA', async () => {
    const noCA = new OciImageProvider({
      root: mkdtempSync(join(work, 'store-')),
      registry: { retryDelayMs: 10, maxRetries: 1 },
    });
    providers.push(noCA);
    await rejectsWith(noCA.prepare(`${tls.host}/busybox`, opts('tls-noca')), 'ErrImagePull', /certificate/i);
    const p = new OciImageProvider({ root: mkdtempSync(join(work, 'store-')), registry: { ca: caPem } });
    providers.push(p);
    const img = await p.prepare(`${tls.host}/busybox`, opts('tls'));
    assert.ok(lookup(img.layers, 'bin/busybox'));
  });

  it('follows a blob redirect to another host without sending the Authorization header there', async () => {
    const front = await startRedirectingFront(basic.host, `Basic ${Buffer.from('alice:s3cret').toString('base64')}`);
    try {
      const p = new OciImageProvider({
        root: mkdtempSync(join(work, 'store-')),
        registry: { plainHttpHosts: [front.host] },
      });
      providers.push(p);
      const img = await p.prepare(
        `${front.host}/busybox`,
        opts('redirect', { credentials: [dockerConfig(front.host, 'alice', 's3cret')] }),
      );
      assert.ok(lookup(img.layers, 'bin/busybox'));
      assert.ok(front.cdnAuthorization.length >= 2, 'config and layer came through the redirect');
      assert.deepEqual(
        new Set(front.cdnAuthorization),
        new Set([undefined]),
        'no credentials leaked to the other host',
      );
    } finally {
      await front.stop();
    }
  });

  it('honours imagePullPolicy: IfNotPresent uses the store, Always costs one manifest request, Never refuses when absent', async () => {
    const p = provider();
    await rejectsWith(p.prepare(`${open.host}/busybox`, opts('never', { policy: 'Never' })), 'ErrImageNeverPull');
    await p.prepare(`${open.host}/busybox`, opts('first'));
    const s0 = { ...p.stats };
    await p.prepare(`${open.host}/busybox`, opts('ifnp'));
    assert.deepEqual(p.stats, s0, 'IfNotPresent: no request at all');
    await p.prepare(`${open.host}/busybox`, opts('always', { policy: 'Always' }));
    assert.equal(p.stats.manifestRequests, s0.manifestRequests + 1);
    assert.equal(p.stats.bytesDownloaded, s0.bytesDownloaded, 'Always, warm: no blob bytes');
    await p.prepare(`${open.host}/busybox`, opts('never2', { policy: 'Never' }));
  });

  it('selects linux/amd64 from a multi-arch index, and linux/arm64 when asked', async () => {
    const amd = await provider().prepare(`${open.host}/multi`, opts('multi-amd'));
    assert.ok(lookup(amd.layers, 'bin/busybox'));
    const arm = await provider({ platform: { os: 'linux', architecture: 'arm64' } }).prepare(
      `${open.host}/multi`,
      opts('multi-arm'),
    );
    assert.equal(readFileSync(lookup(arm.layers, 'arch.txt')!, 'utf8'), 'arm64\n');
    await rejectsWith(
      provider({ platform: { os: 'linux', architecture: 's390x' } }).prepare(`${open.host}/multi`, opts('multi-none')),
      'ErrImagePull',
      /no manifest for linux\/s390x/,
    );
  });

  it('pulls Docker schema 2 media types (skopeo --format v2s2) into the same layers', async () => {
    const p = provider();
    const oci = await p.prepare(`${open.host}/busybox`, opts('oci'));
    const bytes = p.stats.bytesDownloaded;
    const docker = await p.prepare(`${open.host}/busybox-docker`, opts('docker'));
    assert.deepEqual(docker.layers, oci.layers, 'same DiffIDs → same ChainID dirs');
    assert.ok(p.stats.bytesDownloaded - bytes < 4096, 'only manifest/config bytes for the Docker copy');
    assert.deepEqual(docker.config.cmd, ['/bin/sh']);
  });

  it('transfers no shared layer bytes for the second image of a pair', async () => {
    const p = provider();
    const a = await p.prepare(`${open.host}/app1`, opts('app1'));
    const s = { ...p.stats };
    const b = await p.prepare(`${open.host}/app2`, opts('app2'));
    assert.equal(a.layers[0], b.layers[0], 'base layer dir shared');
    assert.notEqual(a.layers[1], b.layers[1]);
    assert.equal(p.stats.blobsDownloaded - s.blobsDownloaded, 2, 'config + the one new layer');
    const base = statSync(p.store.blobPath(layersOf(layout, 'busybox')[0]!)).size;
    assert.ok(p.stats.bytesDownloaded - s.bytesDownloaded < base / 10, 'far fewer bytes than the base layer');
    assert.equal(readFileSync(lookup(b.layers, 'app2.txt')!, 'utf8'), 'app2\n');
  });

  it('downloads each blob once when many sandboxes ask at the same time', async () => {
    const p = provider({ concurrentDownloads: 2 });
    const imgs = await Promise.all(
      Array.from({ length: 6 }, (_, i) => p.prepare(`${open.host}/app1`, opts(`many-${i}`))),
    );
    assert.equal(new Set(imgs.map((i) => i.imageID)).size, 1);
    assert.equal(p.stats.blobsDownloaded, 3, 'config + 2 layers, once');
    assert.equal(p.stats.layersUnpacked, 2);
  });

  it('refuses a blob the registry serves corrupted, and keeps nothing of it', async () => {
    const unique = layersOf(layout, 'corrupt')[1]!;
    const file = open.blobFile(unique);
    const data = readFileSync(file);
    data[data.length >> 1] ^= 0xff;
    writeFileSync(file, data);
    const p = provider();
    await rejectsWith(
      p.prepare(`${open.host}/corrupt`, opts('corrupt')),
      'ErrImagePull',
      /blob content is sha256:[a-f0-9]{64}, expected/,
    );
    assert.ok(!p.store.hasBlob(unique));
    assert.equal(p.store.ingestSize(unique), 0, 'no partial content kept for a bad digest');
  });

  it('resumes a download cut mid-blob with a Range request', async () => {
    const debianLayer = layersOf(layout, 'debian')[0]!;
    const proxy = await startCuttingProxy(open.host, new Set([debianLayer]));
    try {
      const p = new OciImageProvider({
        root: mkdtempSync(join(work, 'store-')),
        registry: { plainHttpHosts: [proxy.host], retryDelayMs: 20 },
        platform: { os: 'linux', architecture: 'amd64' },
      });
      providers.push(p);
      const img = await p.prepare(`${proxy.host}/debian`, opts('resume'));
      assert.deepEqual(proxy.cuts, [debianLayer], 'the proxy did cut the layer');
      assert.equal(proxy.rangeRequests.length, 1);
      assert.match(proxy.rangeRequests[0]!, new RegExp(`^${debianLayer} bytes=[1-9][0-9]*-$`));
      const size = statSync(p.store.blobPath(debianLayer)).size;
      assert.ok(
        p.stats.bytesDownloaded < size * 1.05,
        `resumed, not restarted (${p.stats.bytesDownloaded} for ${size})`,
      );
      assert.match(readFileSync(lookup(img.layers, 'etc/debian_version')!, 'utf8'), /^12\./);
      assert.ok(statSync(lookup(img.layers, 'usr/bin/passwd')!).mode & 0o4000, 'setuid kept');
    } finally {
      await proxy.stop();
    }
  });

  it('reports a tag that does not exist as ManifestUnknown and a bad name as InvalidImageName', async () => {
    const p = provider();
    await rejectsWith(p.prepare(`${open.host}/busybox:nope`, opts('unknown')), 'ManifestUnknown');
    await rejectsWith(p.prepare(`${open.host}/Bad Name`, opts('bad')), 'InvalidImageName');
    await rejectsWith(p.prepare(`${open.host}/busybox:nope`, opts('unknown2')), 'ImagePullBackOff', /back-off/);
  });

  it('follows a moved tag under Always while the sandbox on the old content keeps it through GC', async () => {
    const p = provider();
    await push(layout, open.host, [{ tag: 'app1', as: 'moving' }]);
    const first = await p.prepare(`${open.host}/moving`, opts('moving-old', { policy: 'Always' }));
    await push(layout, open.host, [{ tag: 'app2', as: 'moving' }]);
    const second = await p.prepare(`${open.host}/moving`, opts('moving-new', { policy: 'Always' }));
    assert.notEqual(first.imageID, second.imageID);
    assert.ok(lookup(second.layers, 'app2.txt'));
    const removed = await p.collectGarbage({ pruneImages: true });
    assert.deepEqual(removed.layers, [], 'both sandboxes still hold their layers');
    assert.ok(first.layers.every((l) => existsSync(l)) && existsSync(join(first.layers[1]!, 'app1.txt')));
    await p.release(sandbox('moving-old').id);
    assert.deepEqual(
      (await p.collectGarbage()).layers,
      [first.layers[1]!.split('/').pop()].map((h) => `sha256:${h}`),
      'only the old top layer goes',
    );
  });

  it('garbage-collects exactly what no image and no sandbox references', async () => {
    const p = provider();
    await p.prepare(`${open.host}/app1`, opts('gc-a'));
    await p.prepare(`${open.host}/app2`, opts('gc-b'));
    await p.prepare(`${open.host}/busybox`, opts('gc-c'));
    const listing = () => ({
      blobs: new Set(readdirSync(join(p.store.root, 'blobs/sha256'))),
      layers: new Set(readdirSync(join(p.store.root, 'layers'))),
    });
    const before = listing();
    assert.deepEqual(p.store.collectGarbage(), { blobs: [], layers: [], ingest: [] }, 'everything referenced');

    // app2 loses its image record and its sandbox: only its own layer, manifest and config go.
    const app2 = p.store.readImage(`${open.host}/app2:latest`)!;
    const app1 = p.store.readImage(`${open.host}/app1:latest`)!;
    p.store.removeImage(app2.reference);
    await p.release(sandbox('gc-b').id);
    const removed = await p.collectGarbage();
    const keepBlobs = new Set([...app1.blobs, ...p.store.readImage(`${open.host}/busybox:latest`)!.blobs]);
    const expectBlobs = app2.blobs.filter((b) => !keepBlobs.has(b)).sort();
    assert.deepEqual(removed.blobs.sort(), expectBlobs);
    assert.deepEqual(removed.layers, [app2.chainIDs[1]]);
    const after = listing();
    assert.deepEqual(
      [...before.blobs].filter((b) => !after.blobs.has(b)).sort(),
      expectBlobs.map((d) => d.slice(7)),
    );
    assert.ok(p.store.hasLayer(app1.chainIDs[0]!) && p.store.hasLayer(app1.chainIDs[1]!));

    // A sandbox keeps its image even when the record is pruned; releasing it frees everything.
    await p.release(sandbox('gc-c').id);
    const pruned = await p.collectGarbage({ pruneImages: true });
    assert.ok(p.store.hasLayer(app1.chainIDs[1]!), 'gc-a still holds app1');
    assert.ok(pruned.blobs.length > 0);
    await p.release(sandbox('gc-a').id);
    await p.collectGarbage();
    assert.deepEqual(listing(), { blobs: new Set(), layers: new Set() });
    assert.equal(p.diskUsage().layers, statSync(join(p.store.root, 'layers')).blocks * 512);
  });
});
