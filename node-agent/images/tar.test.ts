import assert from 'node:assert/strict';
import { writeTar } from '../../test/support/tar-writer.js';
import { ByteReader, parseNumeric, parsePax, readTar, type TarEntry } from './tar.js';

async function entries(buf: Buffer, chunk = 7): Promise<{ e: TarEntry; data: Buffer }[]> {
  async function* src() {
    for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk);
  }
  const out: { e: TarEntry; data: Buffer }[] = [];
  for await (const { entry, body } of readTar(new ByteReader(src()), { maxMetaBytes: 1 << 20 })) {
    const parts: Buffer[] = [];
    for await (const c of body()) parts.push(c);
    out.push({ e: entry, data: Buffer.concat(parts) });
  }
  return out;
}

describe('unit: images: tar reader', () => {
  it('reads ustar entries across odd chunk boundaries', async () => {
    const got = await entries(
      writeTar([
        { path: 'd/', type: 'dir' },
        { path: 'd/f', data: 'hello', mode: 0o4755, uid: 7 },
        { path: 'l', type: 'symlink', linkname: '/abs' },
      ]),
    );
    assert.deepEqual(
      got.map((g) => [g.e.path, g.e.type]),
      [
        ['d/', 'dir'],
        ['d/f', 'file'],
        ['l', 'symlink'],
      ],
    );
    assert.equal(got[1]!.data.toString(), 'hello');
    assert.equal(got[1]!.e.mode, 0o4755);
    assert.equal(got[1]!.e.uid, 7);
    assert.equal(got[2]!.e.linkname, '/abs');
  });
  it('keeps binary pax xattr values intact and reads long pax paths', async () => {
    const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xff, 0xfe, 0x00, 0x80]);
    const long = `${'x'.repeat(150)}/${'y'.repeat(120)}`;
    const [g] = await entries(writeTar([{ path: long, data: 'z', xattrs: { 'security.capability': cap } }]));
    assert.equal(g!.e.path, long);
    assert.deepEqual(g!.e.xattrs.get('security.capability'), cap);
  });
  it('parses pax records as bytes and refuses malformed ones', () => {
    assert.deepEqual(parsePax(Buffer.from('11 path=ab\n')).get('path'), Buffer.from('ab'));
    assert.throws(() => parsePax(Buffer.from('99 path=ab\n')));
  });
  it('reads GNU base-256 numbers', () => {
    const b = Buffer.alloc(12);
    b[0] = 0x80;
    b.writeUInt32BE(0x12345678, 8);
    assert.equal(parseNumeric(b, 'size'), 0x12345678);
  });
  it('refuses a corrupted header checksum', async () => {
    const t = writeTar([{ path: 'f', data: 'x' }]);
    t[0] = 0x41;
    await assert.rejects(entries(t), /checksum/);
  });
  it('refuses a truncated body', async () => {
    const t = writeTar([{ path: 'f', data: 'x'.repeat(2000) }], { endBlocks: false }).subarray(0, 1024);
    await assert.rejects(entries(t), /truncated/);
  });
});
