import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createWriteStream,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { createGzip, gzipSync } from 'node:zlib';
import { applyLayer, DEFAULT_APPLY_LIMITS } from '../../node-agent/images/applier.js';
import { ImageError, LayerRefusedError } from '../../node-agent/images/errors.js';
import { writeTar, type WriteEntry } from '../support/tar-writer.js';
import { DEFAULT_UNPACK_LIMITS, unpackLayer } from '../../node-agent/images/unpack.js';
import { lgetxattr } from '../../node-agent/sys/fs.js';
import { lsetxattr } from '../support/xattr.js';

/*
 * Node tier (root): the layer applier against a hostile corpus. Each case is
 * refused naming the entry, and a canary directory outside the layer — the
 * thing an escape would reach — is byte-for-byte unchanged afterwards.
 */

async function* once(b: Buffer) {
  yield b;
}

function snapshot(dir: string): string {
  const out: string[] = [];
  const walk = (p: string) => {
    for (const n of readdirSync(p).sort()) {
      const f = join(p, n);
      const st = lstatSync(f);
      out.push(
        `${f} ${st.mode} ${st.uid} ${st.size} ${st.isFile() ? createHash('sha256').update(readFileSync(f)).digest('hex') : st.isSymbolicLink() ? readlinkSync(f) : ''}`,
      );
      if (st.isDirectory()) walk(f);
    }
  };
  walk(dir);
  return out.join('\n');
}

describe('node: images: layer applier against hostile archives (root)', function () {
  this.timeout(120_000);
  let work: string;
  let canary: string;
  let canaryState: string;
  let n = 0;
  const layerDir = () => {
    const d = join(work, `layer-${n++}`);
    mkdirSync(d);
    return d;
  };

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'sandpit-applier-'));
    canary = join(work, 'canary');
    mkdirSync(join(canary, 'sub'), { recursive: true });
    writeFileSync(join(canary, 'passwd'), 'untouched\n');
    writeFileSync(join(canary, 'sub', 'keep'), 'keep\n');
    canaryState = snapshot(canary);
  });
  afterEach(() => assert.equal(snapshot(canary), canaryState, 'the canary outside the layer is untouched'));
  after(() => rmSync(work, { recursive: true, force: true }));

  const refuses = async (
    entries: WriteEntry[],
    entry: string,
    why: RegExp,
    opts: { lowerDirs?: string[]; allowDevices?: boolean } = {},
  ) => {
    const dir = layerDir();
    await assert.rejects(
      applyLayer(once(writeTar(entries)), dir, {
        limits: { ...DEFAULT_APPLY_LIMITS, allowDevices: opts.allowDevices ?? true },
        lowerDirs: opts.lowerDirs ?? [],
      }),
      (err: unknown) => {
        assert.ok(err instanceof LayerRefusedError, String(err));
        assert.equal(err.entry, entry);
        assert.match(err.message, why);
        return true;
      },
    );
    return dir;
  };

  // Relative hops from a layer dir (work/layer-N) to the canary.
  const up = '../canary';

  it('refuses ../ traversal', async () => {
    await refuses([{ path: `${up}/passwd`, data: 'pwned' }], `${up}/passwd`, /path traversal/);
    await refuses([{ path: 'a/../../canary/passwd', data: 'pwned' }], 'a/../../canary/passwd', /path traversal/);
  });

  it('refuses absolute paths', async () => {
    await refuses([{ path: join(work, 'canary/passwd'), data: 'pwned' }], join(work, 'canary/passwd'), /absolute path/);
  });

  it('refuses writing through a symlink in the same layer (absolute and relative targets)', async () => {
    await refuses(
      [
        { path: 'l', type: 'symlink', linkname: canary },
        { path: 'l/passwd', data: 'pwned' },
      ],
      'l/passwd',
      /parent l is a symlink in this layer/,
    );
    await refuses(
      [
        { path: 'r', type: 'symlink', linkname: `../../../../..${canary}` },
        { path: 'r/sub/keep', data: 'pwned' },
      ],
      'r/sub/keep',
      /parent r is a symlink/,
    );
    await refuses(
      [
        { path: 'l', type: 'symlink', linkname: canary },
        { path: 'l', type: 'dir' },
      ],
      'l',
      /duplicate/,
    );
  });

  it('refuses writing through a symlink planted by an earlier layer (CVE-2025-45582 pattern)', async () => {
    const lower = layerDir();
    await applyLayer(
      once(
        writeTar([
          { path: 'evil', type: 'symlink', linkname: canary },
          { path: 'ok/', type: 'dir' },
        ]),
      ),
      lower,
      { limits: DEFAULT_APPLY_LIMITS, lowerDirs: [] },
    );
    assert.equal(readlinkSync(join(lower, 'evil')), canary, 'symlinks are kept verbatim');
    await refuses(
      [{ path: 'evil/passwd', data: 'pwned' }],
      'evil/passwd',
      /parent evil is a symlink in a lower layer/,
      { lowerDirs: [lower] },
    );
    // A directory entry replacing the symlink is legitimate (overlayfs shows the dir).
    const upper = layerDir();
    await applyLayer(
      once(
        writeTar([
          { path: 'evil/', type: 'dir' },
          { path: 'evil/x', data: 'fine' },
          { path: 'ok/y', data: 'fine' },
        ]),
      ),
      upper,
      { limits: DEFAULT_APPLY_LIMITS, lowerDirs: [lower] },
    );
    assert.equal(readFileSync(join(upper, 'evil/x'), 'utf8'), 'fine');
  });

  it('refuses hardlink escapes: .., targets outside the layer, through symlinks', async () => {
    await refuses([{ path: 'h', type: 'hardlink', linkname: `${up}/passwd` }], 'h', /hardlink target .*path traversal/);
    await refuses(
      [{ path: 'h', type: 'hardlink', linkname: '/etc/passwd' }],
      'h',
      /not a regular file written earlier in this layer/,
    );
    await refuses(
      [
        { path: 'l', type: 'symlink', linkname: canary },
        { path: 'h', type: 'hardlink', linkname: 'l/passwd' },
      ],
      'h',
      /not a regular file written earlier/,
    );
    await refuses(
      [
        { path: 'l', type: 'symlink', linkname: '/etc/passwd' },
        { path: 'h', type: 'hardlink', linkname: 'l' },
      ],
      'h',
      /not a regular file/,
    );
    assert.equal(statSync('/etc/passwd').nlink, 1, 'no link was made to the host file');
  });

  it('refuses device nodes where they are not allowed, and out-of-range device numbers', async () => {
    await refuses(
      [{ path: 'dev/sda', type: 'block', devmajor: 8, devminor: 0 }],
      'dev/sda',
      /device nodes are not allowed/,
      { allowDevices: false },
    );
    await refuses(
      [{ path: 'dev/mem', type: 'char', devmajor: 1, devminor: 1 }],
      'dev/mem',
      /device nodes are not allowed/,
      { allowDevices: false },
    );
  });

  it('refuses whiteouts that reach outside their directory', async () => {
    await refuses([{ path: 'a/.wh..', data: '' }], 'a/.wh..', /whiteout names no file or reaches outside/);
    await refuses([{ path: '.wh...', data: '' }], '.wh...', /reaches outside/);
    await refuses([{ path: '../.wh.canary', data: '' }], '../.wh.canary', /path traversal/);
    await refuses([{ path: 'a/.wh.', data: '' }], 'a/.wh.', /names no file/);
  });

  it('refuses duplicate entries in one layer', async () => {
    await refuses(
      [
        { path: 'f', data: 'one' },
        { path: 'f', data: 'two' },
      ],
      'f',
      /duplicate entry/,
    );
    await refuses(
      [
        { path: 'd/', type: 'dir' },
        { path: 'd', data: 'file' },
      ],
      'd',
      /duplicate entry/,
    );
    await refuses(
      [
        { path: 'f', data: 'one' },
        { path: '.wh.f', data: '' },
      ],
      '.wh.f',
      /duplicate entry/,
    );
    await refuses(
      [
        { path: 'd/x', data: 'x' },
        { path: 'd', data: 'now a file' },
      ],
      'd',
      /earlier entries used it as a directory/,
    );
  });

  it('refuses a gzip bomb (decompression ratio) before writing it out', async () => {
    const blob = join(work, 'bomb.tar.gz');
    const header = writeTar([{ path: 'zeros', data: '' }], { endBlocks: false });
    // One tar entry claiming 512 MiB of zeros: ~500 KB compressed.
    const size = 512 * 1024 ** 2;
    const h = Buffer.from(header.subarray(0, 512));
    h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
    h.write('        ', 148, 'latin1');
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    async function* bomb() {
      yield h;
      const zero = Buffer.alloc(1 << 20);
      for (let i = 0; i < size / zero.length; i++) yield zero;
    }
    await pipeline(Readable.from(bomb()), createGzip({ level: 9 }), createWriteStream(blob));
    const dir = layerDir();
    await assert.rejects(
      unpackLayer({
        blobPath: blob,
        compressedSize: statSync(blob).size,
        compression: 'gzip',
        diffID: `sha256:${'0'.repeat(64)}`,
        dir,
        lowerDirs: [],
        limits: DEFAULT_UNPACK_LIMITS,
      }),
      (err: unknown) => err instanceof LayerRefusedError && /decompression bomb/.test(err.message),
    );
    const cap = Math.max(DEFAULT_UNPACK_LIMITS.ratioFloorBytes, DEFAULT_UNPACK_LIMITS.maxRatio * statSync(blob).size);
    assert.ok(statSync(join(dir, 'zeros')).size <= cap, 'stopped at the ratio limit, long before 512 MiB');
  });

  it('refuses a layer whose content does not match its diff_id', async () => {
    const blob = join(work, 'layer.tar.gz');
    writeFileSync(blob, gzipSync(writeTar([{ path: 'f', data: 'x' }])));
    await assert.rejects(
      unpackLayer({
        blobPath: blob,
        compressedSize: statSync(blob).size,
        compression: 'gzip',
        diffID: `sha256:${'1'.repeat(64)}`,
        dir: layerDir(),
        lowerDirs: [],
        limits: DEFAULT_UNPACK_LIMITS,
      }),
      (err: unknown) => err instanceof ImageError && /diff_id mismatch/.test(err.message),
    );
  });

  it('unpacks zstd layers through zstd(1), since Node 20 zlib has no zstd', async () => {
    const tarBuf = writeTar([
      { path: 'z/', type: 'dir' },
      { path: 'z/file', data: 'zstd content' },
    ]);
    const blob = join(work, 'layer.tar.zst');
    writeFileSync(blob, execFileSync('zstd', ['-q', '-c'], { input: tarBuf }));
    const dir = layerDir();
    const diffID = `sha256:${createHash('sha256').update(tarBuf).digest('hex')}`;
    await unpackLayer({
      blobPath: blob,
      compressedSize: statSync(blob).size,
      compression: 'zstd',
      diffID,
      dir,
      lowerDirs: [],
      limits: DEFAULT_UNPACK_LIMITS,
    });
    assert.equal(readFileSync(join(dir, 'z/file'), 'utf8'), 'zstd content');
  });

  it('refuses oversize layers and too many entries', async () => {
    const dir = layerDir();
    const many = Array.from({ length: 11 }, (_, i) => ({ path: `f${i}`, data: 'x' }));
    await assert.rejects(
      applyLayer(once(writeTar(many)), dir, { limits: { ...DEFAULT_APPLY_LIMITS, maxEntries: 10 }, lowerDirs: [] }),
      /more than 10 entries/,
    );
    const blob = join(work, 'big.tar');
    writeFileSync(blob, writeTar([{ path: 'big', data: Buffer.alloc(200_000) }]));
    await assert.rejects(
      unpackLayer({
        blobPath: blob,
        compressedSize: statSync(blob).size,
        compression: 'none',
        diffID: `sha256:${'1'.repeat(64)}`,
        dir: layerDir(),
        lowerDirs: [],
        limits: { ...DEFAULT_UNPACK_LIMITS, maxBytes: 100_000 },
      }),
      /expands past 100000 bytes/,
    );
  });

  it('applies ownership, modes, times, xattrs, devices, fifos, hardlinks and GNU long names from real GNU tar', async () => {
    const src = join(work, 'src');
    mkdirSync(join(src, 'd'), { recursive: true });
    const long = `${'a'.repeat(120)}/${'b'.repeat(120)}`;
    mkdirSync(join(src, 'a'.repeat(120)));
    writeFileSync(join(src, long), 'long name');
    writeFileSync(join(src, 'd/setuid'), 'suid');
    execFileSync('chown', ['1234:2345', join(src, 'd/setuid')]);
    execFileSync('chmod', ['4750', join(src, 'd/setuid')]);
    execFileSync('ln', [join(src, 'd/setuid'), join(src, 'd/hard')]);
    execFileSync('ln', ['-s', '/etc/hostname', join(src, 'd/abs-link')]);
    execFileSync('mknod', [join(src, 'd/null'), 'c', '1', '3']);
    execFileSync('mkfifo', [join(src, 'd/fifo')]);
    execFileSync('touch', ['-h', '-d', '2001-02-03 04:05:06', join(src, 'd/abs-link'), join(src, 'd/setuid')]);
    // VFS_CAP_REVISION_2 with CAP_NET_RAW (13) permitted and effective.
    const capValue = Buffer.alloc(20);
    capValue.writeUInt32LE(0x02000001, 0);
    capValue.writeUInt32LE(1 << 13, 4);
    assert.equal(lsetxattr(join(src, 'd/setuid'), 'security.capability', capValue, capValue.length, 0), 0);
    const tarBuf = execFileSync(
      'tar',
      ['--format=gnu', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', src, '-cf', '-', '.'],
      { maxBuffer: 1 << 24 },
    );
    const dir = layerDir();
    await applyLayer(once(tarBuf), dir, { limits: DEFAULT_APPLY_LIMITS, lowerDirs: [] });
    assert.equal(readFileSync(join(dir, long), 'utf8'), 'long name');
    const su = statSync(join(dir, 'd/setuid'));
    assert.equal(su.mode & 0o7777, 0o4750, 'setuid survives chown');
    assert.deepEqual([su.uid, su.gid], [1234, 2345]);
    assert.equal(su.mtime.getUTCFullYear(), 2001);
    assert.equal(su.nlink, 2, 'hardlink made inside the layer');
    assert.equal(readlinkSync(join(dir, 'd/abs-link')), '/etc/hostname', 'absolute symlink kept verbatim');
    assert.equal(
      lstatSync(join(dir, 'd/abs-link')).mtime.getUTCFullYear(),
      2001,
      'symlink times set without following',
    );
    const dev = lstatSync(join(dir, 'd/null'));
    assert.ok(dev.isCharacterDevice());
    assert.equal(dev.rdev, lstatSync('/dev/null').rdev);
    assert.ok(lstatSync(join(dir, 'd/fifo')).isFIFO());
    const cap = lgetxattr(join(dir, 'd/setuid'), 'security.capability');
    assert.deepEqual(cap, capValue, 'security.capability kept byte for byte (binary pax value)');
  });

  it('handles more directories than it keeps open, with explicit entries after implicit parents', async () => {
    const entries: WriteEntry[] = [];
    for (let i = 0; i < 700; i++) entries.push({ path: `d${i}/f`, data: String(i) });
    for (let i = 0; i < 700; i++) entries.push({ path: `d${i}/`, type: 'dir', mode: 0o750, uid: 7 });
    const dir = layerDir();
    await applyLayer(once(writeTar(entries)), dir, { limits: DEFAULT_APPLY_LIMITS, lowerDirs: [] });
    const st = statSync(join(dir, 'd3'));
    assert.equal(st.mode & 0o777, 0o750);
    assert.equal(st.uid, 7);
    assert.equal(readFileSync(join(dir, 'd699/f'), 'utf8'), '699');
  });

  it('turns whiteouts and opaque dirs into what overlayfs reads, and overlayfs honours them', async () => {
    const lower = layerDir();
    await applyLayer(
      once(
        writeTar([
          { path: 'etc/', type: 'dir' },
          { path: 'etc/gone', data: 'x' },
          { path: 'etc/kept', data: 'k' },
          { path: 'opq/', type: 'dir' },
          { path: 'opq/hidden', data: 'h' },
        ]),
      ),
      lower,
      { limits: DEFAULT_APPLY_LIMITS, lowerDirs: [] },
    );
    const upper = layerDir();
    await applyLayer(
      once(
        writeTar([
          { path: 'etc/.wh.gone', data: '', uid: 0 },
          { path: 'opq/.wh..wh..opq', data: '' },
          { path: 'opq/new', data: 'n' },
        ]),
      ),
      upper,
      {
        limits: DEFAULT_APPLY_LIMITS,
        lowerDirs: [lower],
      },
    );
    const wh = lstatSync(join(upper, 'etc/gone'));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'whiteout is c 0/0');
    assert.equal(lgetxattr(join(upper, 'opq'), 'trusted.overlay.opaque')?.toString(), 'y');
    const mnt = join(work, 'mnt');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'overlay', 'sandpit-test-images', '-o', `lowerdir=${upper}:${lower}`, mnt]);
    try {
      assert.deepEqual(readdirSync(join(mnt, 'etc')), ['kept']);
      assert.deepEqual(readdirSync(join(mnt, 'opq')), ['new']);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});
