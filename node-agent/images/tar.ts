/*
 * A streaming tar reader written for layer application: ustar, GNU (long
 * names, base-256 numbers) and pax (binary-safe records, SCHILY.xattr.*).
 * It only parses; deciding what an entry may do on disk is the applier's job.
 * npm tar parsers decode pax values as UTF-8 (corrupting security.capability)
 * and drop xattrs, which is why this exists.
 */

import { SandpitError } from '../../lib/errors.js';

export type EntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarEntry {
  /** Path as written in the archive (after pax/GNU overrides), not yet cleaned. */
  path: string;
  type: EntryType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  /** Nanoseconds since the epoch. */
  mtimeNs: bigint;
  atimeNs: bigint | undefined;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Buffer>;
}

/** A layer that is not a tar archive this reader takes (truncated, corrupted, or a feature layers must not use). */
export class TarFormatError extends SandpitError {
  constructor(message: string) {
    super({ step: 'read layer archive', message });
    this.name = 'TarFormatError';
  }
}

export interface TarLimits {
  /** Upper bound for a pax or GNU long-name record. */
  maxMetaBytes: number;
}

const BLOCK = 512;

/** Pull-based reader over an async stream of buffers. */
export class ByteReader {
  #it: AsyncIterator<Buffer>;
  #buf: Buffer = Buffer.alloc(0);
  #done = false;

  constructor(src: AsyncIterable<Buffer>) {
    this.#it = src[Symbol.asyncIterator]();
  }

  async #fill(n: number): Promise<boolean> {
    const parts = [this.#buf];
    let have = this.#buf.length;
    while (have < n && !this.#done) {
      const r = await this.#it.next();
      if (r.done) {
        this.#done = true;
        break;
      }
      parts.push(r.value);
      have += r.value.length;
    }
    if (parts.length > 1) this.#buf = Buffer.concat(parts);
    return this.#buf.length >= n;
  }

  /** Exactly n bytes, or undefined at a clean end of stream (no bytes at all). */
  async read(n: number): Promise<Buffer | undefined> {
    if (!(await this.#fill(n))) {
      if (this.#buf.length === 0) return undefined;
      throw new TarFormatError(`truncated archive: wanted ${n} bytes, got ${this.#buf.length}`);
    }
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /** Yields up to n bytes in the chunks they arrive in. */
  async *chunks(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.#buf.length === 0 && !(await this.#fill(1)))
        throw new TarFormatError('truncated archive inside an entry');
      const take = Math.min(left, this.#buf.length);
      const out = this.#buf.subarray(0, take);
      this.#buf = this.#buf.subarray(take);
      left -= take;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const c of this.chunks(n)) void c;
  }

  /** Reads and discards everything left (so the caller's hash covers the whole stream). */
  async drain(): Promise<void> {
    this.#buf = Buffer.alloc(0);
    while (!this.#done) {
      const r = await this.#it.next();
      if (r.done) this.#done = true;
    }
  }
}

const cstr = (b: Buffer) => {
  const z = b.indexOf(0);
  return (z < 0 ? b : b.subarray(0, z)).toString('utf8');
};

/** Octal, or GNU base-256 when the high bit of the first byte is set. */
export function parseNumeric(b: Buffer, field: string): number {
  if (b.length > 0 && (b[0]! & 0x80) !== 0) {
    if (b[0] === 0xff) throw new TarFormatError(`negative base-256 value in ${field}`);
    let v = BigInt(b[0]! & 0x7f);
    for (let i = 1; i < b.length; i++) v = (v << 8n) | BigInt(b[i]!);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new TarFormatError(`${field} out of range`);
    return Number(v);
  }
  const s = cstr(b).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`bad octal number in ${field}: ${JSON.stringify(s)}`);
  return parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = parseNumeric(h.subarray(148, 156), 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return stored === unsigned || stored === signed;
}

/** Parses pax records ("<len> <key>=<value>\n") keeping values as bytes. */
export function parsePax(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < data.length) {
    if (data[off] === 0) break; // padding
    const sp = data.indexOf(0x20, off);
    if (sp < 0) throw new TarFormatError('malformed pax record');
    const lenStr = data.subarray(off, sp).toString('latin1');
    if (!/^[0-9]+$/.test(lenStr)) throw new TarFormatError('malformed pax record length');
    const len = parseInt(lenStr, 10);
    if (len <= sp - off + 1 || off + len > data.length || data[off + len - 1] !== 0x0a) {
      throw new TarFormatError('malformed pax record');
    }
    const rec = data.subarray(sp + 1, off + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new TarFormatError('pax record without key');
    out.set(rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1)));
    off += len;
  }
  return out;
}

function paxTime(v: Buffer): bigint {
  const s = v.toString('latin1');
  const m = /^(-?)([0-9]+)(?:\.([0-9]{1,9})[0-9]*)?$/.exec(s);
  if (!m) throw new TarFormatError(`bad pax time ${JSON.stringify(s)}`);
  const ns = BigInt(m[2]!) * 1_000_000_000n + BigInt((m[3] ?? '').padEnd(9, '0'));
  return m[1] ? -ns : ns;
}

const TYPES: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

/**
 * Reads entries one by one. The caller must consume (or skip) each entry's
 * body through `body()` before asking for the next entry.
 */
export async function* readTar(
  reader: ByteReader,
  limits: TarLimits,
): AsyncGenerator<{ entry: TarEntry; body: () => AsyncGenerator<Buffer> }> {
  let pax = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const h = await reader.read(BLOCK);
    if (!h) return; // EOF without end blocks: accepted, like GNU tar does with a warning
    if (h.every((b) => b === 0)) {
      await reader.drain();
      return;
    }
    if (!checksumOk(h)) throw new TarFormatError('header checksum mismatch (not a tar archive, or corrupted)');
    const flag = String.fromCharCode(h[156]!);
    const size = parseNumeric(h.subarray(124, 136), 'size');
    const padded = Math.ceil(size / BLOCK) * BLOCK;

    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > limits.maxMetaBytes) throw new TarFormatError(`metadata record of ${size} bytes exceeds the limit`);
      const data = (await reader.read(padded))?.subarray(0, size) ?? Buffer.alloc(0);
      if (flag === 'x') pax = parsePax(data);
      else if (flag === 'L') longName = cstr(data);
      else if (flag === 'K') longLink = cstr(data);
      // 'g' (global pax) is ignored, as the image spec allows.
      continue;
    }

    let type = TYPES[flag];
    if (!type) {
      throw new TarFormatError(`unsupported tar entry type ${JSON.stringify(flag)} for ${cstr(h.subarray(0, 100))}`);
    }
    for (const k of pax.keys()) {
      if (k.startsWith('GNU.sparse')) throw new TarFormatError('sparse files are not supported in layers');
    }
    const magic = h.subarray(257, 263).toString('latin1');
    const ustar = magic === 'ustar\0' || magic === 'ustar ';
    const prefix = magic === 'ustar\0' ? cstr(h.subarray(345, 500)) : '';
    let path = longName ?? (prefix ? `${prefix}/${cstr(h.subarray(0, 100))}` : cstr(h.subarray(0, 100)));
    let linkname = longLink ?? cstr(h.subarray(157, 257));
    const p = pax.get('path');
    if (p) path = p.toString('utf8');
    const lp = pax.get('linkpath');
    if (lp) linkname = lp.toString('utf8');
    const num = (key: string, fallback: number) => {
      const v = pax.get(key);
      if (!v) return fallback;
      const s = v.toString('latin1');
      if (!/^[0-9]+$/.test(s)) throw new TarFormatError(`bad pax ${key}`);
      return Number(s);
    };
    const realSize = num('size', size);
    // Pre-POSIX writers mark directories as regular files with a trailing slash.
    if ((flag === '\0' || flag === '0') && path.endsWith('/')) type = 'dir';
    const xattrs = new Map<string, Buffer>();
    for (const [k, v] of pax) if (k.startsWith('SCHILY.xattr.')) xattrs.set(k.slice('SCHILY.xattr.'.length), v);
    const mt = pax.get('mtime');
    const at = pax.get('atime');
    const entry: TarEntry = {
      path,
      type,
      size: type === 'file' ? realSize : 0,
      mode: parseNumeric(h.subarray(100, 108), 'mode') & 0o7777,
      uid: num('uid', parseNumeric(h.subarray(108, 116), 'uid')),
      gid: num('gid', parseNumeric(h.subarray(116, 124), 'gid')),
      mtimeNs: mt ? paxTime(mt) : BigInt(parseNumeric(h.subarray(136, 148), 'mtime')) * 1_000_000_000n,
      atimeNs: at ? paxTime(at) : undefined,
      linkname,
      devmajor: ustar ? parseNumeric(h.subarray(329, 337), 'devmajor') : 0,
      devminor: ustar ? parseNumeric(h.subarray(337, 345), 'devminor') : 0,
      xattrs,
    };
    pax = new Map();
    longName = undefined;
    longLink = undefined;

    // Only regular files have a body; other types may carry a size (e.g. hardlinks from some writers)
    // but no data follows, as Go's archive/tar reads them.
    const bodySize = type === 'file' ? realSize : 0;
    const bodyPadded = Math.ceil(bodySize / BLOCK) * BLOCK;
    let consumed = false;
    const body = async function* () {
      consumed = true;
      yield* reader.chunks(bodySize);
      if (bodyPadded > bodySize) await reader.skip(bodyPadded - bodySize);
    };
    yield { entry, body };
    if (!consumed) {
      await reader.skip(bodyPadded);
    }
  }
}
