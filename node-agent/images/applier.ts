import { closeSync, fchmodSync, fchownSync, fstatSync, writeSync } from 'node:fs';
import { errnoName, koffi } from '../sys/libc.js';
import * as sys from '../sys/fs.js';
import { LayerRefusedError } from './errors.js';
import { classifyEntry, splitLinkTarget, xattrAllowed } from './paths.js';
import { ByteReader, readTar, TarFormatError, type TarEntry } from './tar.js';
import type { Logger } from '../../lib/log.js';

/*
 * Applies one layer tar into its own empty directory, which later serves as
 * an overlayfs lower dir. Because every layer gets a fresh directory, applying
 * never deletes anything: whiteouts become char 0/0 nodes and opaque markers
 * become trusted.overlay.opaque=y, exactly what overlayfs reads.
 *
 * Safety: every name is opened relative to a directory fd with openat2 and
 * RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, so no symlink — in this layer or planted
 * by an earlier one — is ever followed while writing. Entries whose parent is
 * a symlink (here or in a lower layer) are refused rather than redirected.
 */

export interface ApplyLimits {
  /** Entries per layer. */
  maxEntries: number;
  /** Uncompressed bytes per layer. */
  maxBytes: number;
  /** Devices (char/block) allowed; whiteouts are always written. */
  allowDevices: boolean;
  maxDepth: number;
}

export const DEFAULT_APPLY_LIMITS: ApplyLimits = {
  maxEntries: 1_000_000,
  maxBytes: 32 * 1024 ** 3,
  allowDevices: true,
  maxDepth: 256,
};

export interface ApplyOptions {
  limits: ApplyLimits;
  /** Directories of the layers below, highest first, to refuse writes through their symlinks. */
  lowerDirs: string[];
  log?: Logger;
}

export interface ApplyResult {
  entries: number;
}

const RESOLVE = sys.RESOLVE_BENEATH | sys.RESOLVE_NO_SYMLINKS | sys.RESOLVE_NO_MAGICLINKS;

function errnoOf(): string {
  return errnoName(koffi.errno());
}

/** Open directory fds keyed by path within the layer; safe to cache because the dir is private to us. */
class DirCache {
  #fds = new Map<string, number>();
  get(key: string) {
    return this.#fds.get(key);
  }
  set(key: string, fd: number) {
    if (this.#fds.size >= 512) {
      for (const [k, v] of this.#fds) {
        if (k === '') continue; // the layer root stays open
        closeSync(v);
        this.#fds.delete(k);
        break;
      }
    }
    this.#fds.set(key, fd);
  }
  closeAll() {
    for (const fd of this.#fds.values()) closeSync(fd);
    this.#fds.clear();
  }
}

/**
 * Reads an uncompressed layer tar from `tar` and writes it into `dir` (which
 * must exist and be empty). Throws LayerRefusedError naming the first entry it
 * will not write; the caller discards the directory then.
 */
export async function applyLayer(tar: AsyncIterable<Buffer>, dir: string, opts: ApplyOptions): Promise<ApplyResult> {
  const rootfd = sys.openat2(sys.AT_FDCWD, dir, sys.O_RDONLY | sys.O_DIRECTORY, 0, 0);
  if (rootfd < 0) throw new LayerRefusedError('/', `cannot open layer dir ${dir}: ${errnoOf()}`);
  const lowerFds: number[] = [];
  for (const l of opts.lowerDirs) {
    const fd = sys.openat2(sys.AT_FDCWD, l, sys.O_PATH | sys.O_DIRECTORY, 0, 0);
    if (fd >= 0) lowerFds.push(fd);
  }
  const dirs = new DirCache();
  dirs.set('', rootfd);
  const explicit = new Set<string>(); // paths an entry of this layer has written
  const implicitDirs = new Set<string>(); // parents we made for deeper entries
  const files = new Set<string>(); // regular files of this layer, valid hardlink targets
  const lowerChecked = new Map<string, boolean>(); // prefix -> is a symlink in the top-most lower
  const dirTimes: { key: string; atimeNs: bigint; mtimeNs: bigint }[] = [];
  let entries = 0;

  function refuse(e: string, why: string): never {
    throw new LayerRefusedError(e, why);
  }

  const lowerIsSymlink = (key: string): boolean => {
    let r = lowerChecked.get(key);
    if (r !== undefined) return r;
    r = false;
    for (const lfd of lowerFds) {
      const fd = sys.openat2(lfd, key, sys.O_PATH | sys.O_NOFOLLOW, 0, RESOLVE);
      if (fd < 0) {
        const code = errnoOf();
        if (code === 'ENOENT') continue;
        // ELOOP/ENOTDIR: a parent of key is a symlink or a file there; the parent check caught the symlink case.
        break;
      }
      const st = fstatSync(fd);
      closeSync(fd);
      r = st.isSymbolicLink();
      break;
    }
    lowerChecked.set(key, r);
    return r;
  };

  /** fd of the directory `parts` inside the layer, creating missing directories (0755, root-owned). */
  const parentFd = (entry: string, parts: string[]): number => {
    const key = parts.join('/');
    const cached = dirs.get(key);
    if (cached !== undefined) return cached;
    const up = parentFd(entry, parts.slice(0, -1));
    const name = parts[parts.length - 1]!;
    let fd = sys.openat2(up, name, sys.O_RDONLY | sys.O_DIRECTORY | sys.O_NOFOLLOW, 0, RESOLVE);
    if (fd < 0) {
      const code = errnoOf();
      if (code === 'ELOOP' || code === 'ENOTDIR') {
        // O_DIRECTORY|O_NOFOLLOW on a symlink says ENOTDIR: look at the name itself to say which.
        const pfd = sys.openat2(up, name, sys.O_PATH | sys.O_NOFOLLOW, 0, RESOLVE);
        const isLink = pfd >= 0 && fstatSync(pfd).isSymbolicLink();
        if (pfd >= 0) closeSync(pfd);
        if (isLink) refuse(entry, `its parent ${key} is a symlink in this layer; writing through it could escape`);
        refuse(entry, `its parent ${key} is not a directory`);
      }
      if (code !== 'ENOENT') refuse(entry, `cannot open parent ${key}: ${code}`);
      if (lowerIsSymlink(key))
        refuse(entry, `its parent ${key} is a symlink in a lower layer; writing through it could escape`);
      if (sys.mkdirat(up, name, 0o755) < 0) refuse(entry, `mkdir ${key}: ${errnoOf()}`);
      implicitDirs.add(key);
      fd = sys.openat2(up, name, sys.O_RDONLY | sys.O_DIRECTORY | sys.O_NOFOLLOW, 0, RESOLVE);
      if (fd < 0) refuse(entry, `open ${key}: ${errnoOf()}`);
    }
    dirs.set(key, fd);
    return fd;
  };

  const setXattrsFd = (entry: TarEntry, fd: number, kind: 'file' | 'dir') => {
    for (const [name, value] of entry.xattrs) {
      if (!xattrAllowed(name, kind)) {
        opts.log?.debug({ entry: entry.path, xattr: name }, 'xattr dropped');
        continue;
      }
      if (sys.fsetxattr(fd, name, value, value.length, 0) < 0) {
        const code = errnoOf();
        if (code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') refuse(entry.path, `setxattr ${name}: ${code}`);
      }
    }
  };

  const ownAndTime = (entry: TarEntry, pfd: number, name: string) => {
    if (sys.fchownat(pfd, name, entry.uid, entry.gid, sys.AT_SYMLINK_NOFOLLOW) < 0)
      refuse(entry.path, `lchown: ${errnoOf()}`);
    if (sys.utimensat(pfd, name, entry.atimeNs ?? entry.mtimeNs, entry.mtimeNs, sys.AT_SYMLINK_NOFOLLOW) < 0) {
      refuse(entry.path, `utimensat: ${errnoOf()}`);
    }
  };

  try {
    for await (const { entry, body } of readTar(new ByteReader(tar), { maxMetaBytes: 1024 * 1024 })) {
      if (++entries > opts.limits.maxEntries)
        refuse(entry.path, `layer has more than ${opts.limits.maxEntries} entries`);
      const c = classifyEntry(entry.path, opts.limits.maxDepth);
      if ('refused' in c) refuse(entry.path, c.refused);
      if (c.kind === 'root' || c.kind === 'reserved') continue; // root attributes are unspecified by the image spec

      if (c.kind === 'opaque') {
        const fd = parentFd(entry.path, c.parts);
        if (sys.fsetxattr(fd, 'trusted.overlay.opaque', Buffer.from('y'), 1, 0) < 0) {
          refuse(entry.path, `set trusted.overlay.opaque: ${errnoOf()} (the agent must run as root)`);
        }
        continue;
      }

      const key = c.parts.join('/');
      const name = c.parts[c.parts.length - 1]!;
      if (explicit.has(key)) refuse(entry.path, 'duplicate entry in one layer');
      const pfd = parentFd(entry.path, c.parts.slice(0, -1));
      explicit.add(key);

      if (c.kind === 'whiteout') {
        if (implicitDirs.has(key)) refuse(entry.path, 'whiteout of a directory this layer writes into');
        if (sys.mknodat(pfd, name, sys.S_IFCHR, 0n) < 0) refuse(entry.path, `mknod whiteout: ${errnoOf()}`);
        if (sys.fchownat(pfd, name, entry.uid, entry.gid, sys.AT_SYMLINK_NOFOLLOW) < 0)
          refuse(entry.path, `lchown: ${errnoOf()}`);
        continue;
      }

      const wasImplicit = implicitDirs.has(key);
      if (wasImplicit) {
        if (entry.type !== 'dir') refuse(entry.path, `is a ${entry.type} but earlier entries used it as a directory`);
        implicitDirs.delete(key);
      }

      switch (entry.type) {
        case 'dir': {
          if (!wasImplicit && sys.mkdirat(pfd, name, 0o700) < 0) refuse(entry.path, `mkdir: ${errnoOf()}`);
          const fd = parentFd(entry.path, c.parts);
          fchownSync(fd, entry.uid, entry.gid);
          fchmodSync(fd, entry.mode);
          setXattrsFd(entry, fd, 'dir');
          dirTimes.push({ key, atimeNs: entry.atimeNs ?? entry.mtimeNs, mtimeNs: entry.mtimeNs });
          break;
        }
        case 'file': {
          const fd = sys.openat2(pfd, name, sys.O_WRONLY | sys.O_CREAT | sys.O_EXCL | sys.O_NOFOLLOW, 0o600, RESOLVE);
          if (fd < 0) refuse(entry.path, `create: ${errnoOf()}`);
          try {
            for await (const chunk of body()) {
              let off = 0;
              while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
            }
            fchownSync(fd, entry.uid, entry.gid);
            fchmodSync(fd, entry.mode); // after chown, which clears setuid
            setXattrsFd(entry, fd, 'file');
            if (sys.futimens(fd, entry.atimeNs ?? entry.mtimeNs, entry.mtimeNs) < 0)
              refuse(entry.path, `futimens: ${errnoOf()}`);
          } finally {
            closeSync(fd);
          }
          files.add(key);
          break;
        }
        case 'symlink': {
          if (entry.linkname === '' || Buffer.byteLength(entry.linkname) > 4095)
            refuse(entry.path, 'empty or oversized symlink target');
          if (sys.symlinkat(entry.linkname, pfd, name) < 0) refuse(entry.path, `symlink: ${errnoOf()}`);
          ownAndTime(entry, pfd, name);
          break;
        }
        case 'hardlink': {
          const t = splitLinkTarget(entry.linkname);
          if (!Array.isArray(t)) refuse(entry.path, `hardlink target ${JSON.stringify(entry.linkname)}: ${t.refused}`);
          const tkey = (t as string[]).join('/');
          if (!files.has(tkey)) {
            refuse(
              entry.path,
              `hardlink target ${JSON.stringify(entry.linkname)} is not a regular file written earlier in this layer`,
            );
          }
          const tfd = sys.openat2(rootfd, tkey, sys.O_PATH | sys.O_NOFOLLOW, 0, RESOLVE);
          if (tfd < 0) refuse(entry.path, `open hardlink target: ${errnoOf()}`);
          try {
            if (sys.linkat(tfd, '', pfd, name, sys.AT_EMPTY_PATH) < 0) refuse(entry.path, `link: ${errnoOf()}`);
          } finally {
            closeSync(tfd);
          }
          files.add(key);
          break;
        }
        case 'char':
        case 'block':
        case 'fifo': {
          if (entry.type !== 'fifo' && !opts.limits.allowDevices)
            refuse(entry.path, 'device nodes are not allowed here');
          if (entry.devmajor > 0xffffffff || entry.devminor > 0xffffffff)
            refuse(entry.path, 'device number out of range');
          const fmt = entry.type === 'char' ? sys.S_IFCHR : entry.type === 'block' ? sys.S_IFBLK : sys.S_IFIFO;
          const dev = entry.type === 'fifo' ? 0n : sys.makedev(entry.devmajor, entry.devminor);
          if (sys.mknodat(pfd, name, fmt | entry.mode, dev) < 0) refuse(entry.path, `mknod: ${errnoOf()}`);
          if (sys.fchownat(pfd, name, entry.uid, entry.gid, sys.AT_SYMLINK_NOFOLLOW) < 0)
            refuse(entry.path, `lchown: ${errnoOf()}`);
          // The node was just created by us in a private dir, so following is not a concern for chmod.
          if (sys.fchmodat(pfd, name, entry.mode, 0) < 0) refuse(entry.path, `chmod: ${errnoOf()}`);
          ownAndTime(entry, pfd, name);
          break;
        }
      }
    }
    // Directory times last: creating children changed them.
    for (const d of dirTimes.reverse()) {
      const fd = sys.openat2(rootfd, d.key, sys.O_RDONLY | sys.O_DIRECTORY | sys.O_NOFOLLOW, 0, RESOLVE);
      if (fd < 0) continue;
      sys.futimens(fd, d.atimeNs, d.mtimeNs);
      closeSync(fd);
    }
  } catch (err) {
    if (err instanceof TarFormatError) throw new LayerRefusedError(`#${entries}`, `malformed archive: ${err.detail}`);
    throw err;
  } finally {
    dirs.closeAll();
    for (const fd of lowerFds) closeSync(fd);
  }
  return { entries };
}
