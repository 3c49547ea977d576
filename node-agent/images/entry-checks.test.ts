import assert from 'node:assert/strict';
import { LayerLedger, type EntryLimits } from './entry-checks.js';
import { LayerRefusedError } from './errors.js';
import type { EntryType, TarEntry } from './tar.js';

const limits: EntryLimits = { maxEntries: 100, allowDevices: true, maxDepth: 8 };

const entry = (path: string, type: EntryType = 'file', extra: Partial<TarEntry> = {}): TarEntry => ({
  path,
  type,
  size: 0,
  mode: 0o644,
  uid: 0,
  gid: 0,
  mtimeNs: 0n,
  atimeNs: undefined,
  linkname: '',
  devmajor: 0,
  devminor: 0,
  xattrs: new Map(),
  ...extra,
});

/** Runs entries through the ledger the way the applier does (missing parents made), returning the first refusal. */
function firstRefusal(entries: TarEntry[], l: EntryLimits = limits): string | undefined {
  const ledger = new LayerLedger(l);
  const onDisk = new Set<string>();
  try {
    for (const e of entries) {
      const a = ledger.admit(e);
      if (a.kind === 'skip' || a.kind === 'opaque') continue;
      for (let i = 1; i < a.parts.length; i++) {
        const dir = a.parts.slice(0, i).join('/');
        if (!onDisk.has(dir)) ledger.madeDirectory(dir);
        onDisk.add(dir);
      }
      const placed = ledger.place(e, a);
      onDisk.add(a.key);
      if (placed.wasImplicit) assert.equal(e.type, 'dir');
      if (a.kind === 'path' && (e.type === 'file' || e.type === 'hardlink')) ledger.wroteFile(a.key);
    }
  } catch (err) {
    assert.ok(err instanceof LayerRefusedError);
    return err.message;
  }
  return undefined;
}

const refusal = (path: string, why: string) =>
  `apply layer: entry ${JSON.stringify(path)} refused: ${why} (the image contains an unsafe or malformed layer; rebuild it or use another image)`;

describe('unit: images: layer entry checks', () => {
  it('names what an entry is: skipped, an opaque marker, a whiteout or a path', () => {
    const ledger = new LayerLedger(limits);
    assert.deepEqual(ledger.admit(entry('./', 'dir')), { kind: 'skip' });
    assert.deepEqual(ledger.admit(entry('a/.wh..wh.plnk')), { kind: 'skip' });
    assert.deepEqual(ledger.admit(entry('a/.wh..wh..opq')), { kind: 'opaque', parts: ['a'] });
    assert.deepEqual(ledger.admit(entry('a/.wh.b')), { kind: 'whiteout', parts: ['a', 'b'], key: 'a/b', name: 'b' });
    assert.deepEqual(ledger.admit(entry('./a/b/c')), { kind: 'path', parts: ['a', 'b', 'c'], key: 'a/b/c', name: 'c' });
    assert.equal(ledger.entries, 5, 'every entry counts, skipped or not');
  });

  it('places a directory over one made for earlier entries, and a hard link on its target', () => {
    const ledger = new LayerLedger(limits);
    ledger.madeDirectory('a');
    assert.deepEqual(ledger.place(entry('a/', 'dir'), { kind: 'path', key: 'a' }), { wasImplicit: true });
    assert.deepEqual(ledger.place(entry('b/', 'dir'), { kind: 'path', key: 'b' }), { wasImplicit: false });
    ledger.wroteFile('a/f');
    assert.deepEqual(ledger.place(entry('g', 'hardlink', { linkname: '/a/f' }), { kind: 'path', key: 'g' }), {
      wasImplicit: false,
      linkTarget: 'a/f',
    });
  });

  const accepted: [what: string, entries: TarEntry[]][] = [
    [
      'a file, a dir that deeper entries made first, a hard link to the file',
      [entry('d/f'), entry('d/', 'dir'), entry('d/g', 'hardlink', { linkname: 'd/f' })],
    ],
    [
      'a hard link to a hard link',
      [entry('f'), entry('g', 'hardlink', { linkname: 'f' }), entry('h', 'hardlink', { linkname: 'g' })],
    ],
    ['a whiteout and an opaque marker', [entry('.wh.gone'), entry('d/.wh..wh..opq'), entry('d/x')]],
    [
      'devices and fifos',
      [
        entry('null', 'char', { devmajor: 1, devminor: 3 }),
        entry('sda', 'block', { devmajor: 8 }),
        entry('pipe', 'fifo'),
      ],
    ],
    ['a symlink of 4095 bytes', [entry('l', 'symlink', { linkname: 'x'.repeat(4095) })]],
  ];
  for (const [what, entries] of accepted) {
    it(`accepts ${what}`, () => assert.equal(firstRefusal(entries), undefined));
  }

  const refused: [what: string, entries: TarEntry[], path: string, why: string, l?: EntryLimits][] = [
    [
      'more entries than the limit',
      [entry('a'), entry('b'), entry('c')],
      'c',
      'layer has more than 2 entries',
      { ...limits, maxEntries: 2 },
    ],
    ['a traversal', [entry('a/../../etc/passwd')], 'a/../../etc/passwd', 'path traversal (..)'],
    ['an absolute name', [entry('/etc/passwd')], '/etc/passwd', 'absolute path'],
    ['a path deeper than the limit', [entry('a/b/c/d/e/f/g/h/i')], 'a/b/c/d/e/f/g/h/i', 'path deeper than 8'],
    [
      'a whiteout reaching outside its directory',
      [entry('a/.wh..')],
      'a/.wh..',
      'whiteout names no file or reaches outside its directory',
    ],
    [
      'a duplicate entry (a checked file replaced by a symlink)',
      [entry('bin/sh'), entry('bin/sh', 'symlink', { linkname: '/etc/shadow' })],
      'bin/sh',
      'duplicate entry in one layer',
    ],
    ['a duplicate through another spelling', [entry('a/b'), entry('./a//b')], './a//b', 'duplicate entry in one layer'],
    [
      'a whiteout of a directory this layer writes into',
      [entry('d/f'), entry('.wh.d')],
      '.wh.d',
      'whiteout of a directory this layer writes into',
    ],
    [
      'a file where earlier entries made a directory',
      [entry('d/f'), entry('d', 'symlink', { linkname: '/' })],
      'd',
      'is a symlink but earlier entries used it as a directory',
    ],
    ['an empty symlink target', [entry('l', 'symlink')], 'l', 'empty or oversized symlink target'],
    [
      'a symlink target over 4095 bytes',
      [entry('l', 'symlink', { linkname: 'x'.repeat(4096) })],
      'l',
      'empty or oversized symlink target',
    ],
    [
      'a hard link out of the layer',
      [entry('h', 'hardlink', { linkname: '../etc/shadow' })],
      'h',
      'hardlink target "../etc/shadow": path traversal (..)',
    ],
    [
      'a hard link to a file of a lower layer',
      [entry('h', 'hardlink', { linkname: 'etc/shadow' })],
      'h',
      'hardlink target "etc/shadow" is not a regular file written earlier in this layer',
    ],
    [
      'a hard link to a directory',
      [entry('d/', 'dir'), entry('h', 'hardlink', { linkname: 'd' })],
      'h',
      'hardlink target "d" is not a regular file written earlier in this layer',
    ],
    [
      'a hard link to a symlink',
      [entry('s', 'symlink', { linkname: 'x' }), entry('h', 'hardlink', { linkname: 's' })],
      'h',
      'hardlink target "s" is not a regular file written earlier in this layer',
    ],
    [
      'a hard link to a later file',
      [entry('h', 'hardlink', { linkname: 'f' }), entry('f')],
      'h',
      'hardlink target "f" is not a regular file written earlier in this layer',
    ],
    [
      'a device where devices are not allowed',
      [entry('mem', 'char', { devmajor: 1, devminor: 1 })],
      'mem',
      'device nodes are not allowed here',
      { ...limits, allowDevices: false },
    ],
    ['a device number out of range', [entry('x', 'block', { devmajor: 2 ** 32 })], 'x', 'device number out of range'],
  ];
  for (const [what, entries, path, why, l] of refused) {
    it(`refuses ${what}`, () => assert.equal(firstRefusal(entries, l), refusal(path, why)));
  }

  it('allows fifos where devices are not', () => {
    assert.equal(firstRefusal([entry('pipe', 'fifo')], { ...limits, allowDevices: false }), undefined);
  });
});
