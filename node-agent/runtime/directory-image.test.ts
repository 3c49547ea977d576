import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PullOptions } from '../contracts.js';
import { ImageError } from '../images/errors.js';
import { DirectoryImageProvider } from './directory-image.js';

const opts: PullOptions = {
  policy: 'IfNotPresent',
  credentials: [],
  sandbox: { id: 'abc', namespace: 'team', name: 'sb', uid: 'u' },
};

describe('unit: DirectoryImageProvider', () => {
  let base: string;
  let roots: string;
  before(() => {
    base = mkdtempSync(join(tmpdir(), 'sandpit-dir-images-'));
    roots = join(base, 'roots');
    mkdirSync(join(roots, 'busybox'), { recursive: true });
    mkdirSync(join(base, 'secret'));
    writeFileSync(join(roots, 'busybox.config.json'), JSON.stringify({ Env: ['A=1'] }));
    symlinkSync(join(base, 'secret'), join(roots, 'out'));
    symlinkSync(join(roots, 'busybox'), join(base, 'in'));
    writeFileSync(join(roots, 'file'), 'not a directory');
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  const refused = async (p: DirectoryImageProvider, ref: string, message: RegExp) =>
    assert.rejects(p.prepare(ref, opts), (err: unknown) => {
      assert.ok(err instanceof ImageError, String(err));
      assert.equal(err.reason, 'InvalidImageName');
      assert.equal(err.retryable, false);
      assert.match(err.message, message);
      assert.match(err.hint ?? '', /--allow-dir-images/);
      return true;
    });

  it('serves a directory at or below an allowed root, by its real path, with its config', async () => {
    const p = new DirectoryImageProvider({ allowedRoots: [roots] });
    const img = await p.prepare(`dir:${roots}/busybox`, opts);
    assert.deepEqual(img.layers, [join(roots, 'busybox')]);
    assert.deepEqual(img.config, { Env: ['A=1'] });
    assert.deepEqual((await p.prepare(`dir:${roots}`, opts)).layers, [roots]);
    // A link from elsewhere that resolves inside is served by where it resolves to.
    assert.deepEqual((await p.prepare(`dir:${base}/in`, opts)).layers, [join(roots, 'busybox')]);
    assert.deepEqual(
      (await new DirectoryImageProvider({ allowedRoots: [`${roots}/`] }).prepare(`dir:${roots}/busybox`, opts)).layers,
      [join(roots, 'busybox')],
    );
  });

  it('refuses, as InvalidImageName, / and every path that resolves outside the allowed roots', async () => {
    const p = new DirectoryImageProvider({ allowedRoots: [roots] });
    for (const ref of [
      'dir:/',
      `dir:${roots}/..`,
      `dir:${roots}/busybox/../../secret`,
      `dir:${roots}/out`,
      `dir:${base}/secret`,
      `dir:${roots}-x`,
      'dir:relative/path',
      `dir:${roots}/missing`,
      `dir:${roots}/file`,
    ])
      await refused(p, ref, /is not a directory under one this node allows/);
  });

  it('refuses every dir: image when no root is allowed (a cluster agent by default)', async () => {
    await refused(
      new DirectoryImageProvider({ allowedRoots: [] }),
      `dir:${roots}/busybox`,
      /this node does not allow dir: images/,
    );
    assert.throws(() => new DirectoryImageProvider({ allowedRoots: ['relative'] }), /absolute/);
  });

  it('serves any existing directory in standalone mode (no allowed roots given)', async () => {
    assert.deepEqual((await new DirectoryImageProvider().prepare(`dir:${base}/secret`, opts)).layers, [
      join(base, 'secret'),
    ]);
  });
});
