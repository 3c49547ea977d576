import type { EntryType } from '../../node-agent/images/tar.js';

/*
 * A tar writer for test corpora and fixtures (the hostile layer corpus of the
 * applier tests is built with it). Test-only: the agent never writes tar.
 */

const BLOCK = 512;

export interface WriteEntry {
  path: string;
  type?: EntryType;
  data?: Buffer | string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Buffer>;
}

const FLAGS: Record<EntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

function octal(n: number, len: number): string {
  return n.toString(8).padStart(len - 1, '0') + '\0';
}

function header(name: string, flag: string, size: number, e: WriteEntry, linkname: string): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name.slice(0, 100), 0, 'utf8');
  h.write(octal(e.mode ?? (flag === '5' ? 0o755 : 0o644), 8), 100, 'latin1');
  h.write(octal(e.uid ?? 0, 8), 108, 'latin1');
  h.write(octal(e.gid ?? 0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(e.mtime ?? 1_700_000_000, 12), 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write(flag, 156, 'latin1');
  h.write(linkname.slice(0, 100), 157, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.write(octal(e.devmajor ?? 0, 8), 329, 'latin1');
  h.write(octal(e.devminor ?? 0, 8), 337, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'latin1');
  return h;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((BLOCK - (b.length % BLOCK)) % BLOCK)]);

/** Builds a tar archive in memory (pax records for long names and xattrs). */
export function writeTar(entries: WriteEntry[], opts: { endBlocks?: boolean } = {}): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? (e.path.endsWith('/') ? 'dir' : 'file');
    const data = type === 'file' ? Buffer.from(e.data ?? '') : Buffer.alloc(0);
    const recs: Buffer[] = [];
    if (Buffer.byteLength(e.path) > 100) recs.push(paxRecord('path', Buffer.from(e.path)));
    if (Buffer.byteLength(e.linkname ?? '') > 100) recs.push(paxRecord('linkpath', Buffer.from(e.linkname ?? '')));
    for (const [k, v] of Object.entries(e.xattrs ?? {})) recs.push(paxRecord(`SCHILY.xattr.${k}`, v));
    if (recs.length) {
      const p = Buffer.concat(recs);
      out.push(header('PaxHeader', 'x', p.length, {} as WriteEntry, ''), pad(p));
    }
    out.push(header(e.path, FLAGS[type], data.length, e, e.linkname ?? ''), pad(data));
  }
  if (opts.endBlocks !== false) out.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(out);
}
