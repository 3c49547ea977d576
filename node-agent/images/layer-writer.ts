import { closeSync, fchmodSync, fchownSync, fstatSync, writeSync } from 'node:fs';
import type { Logger } from '../../lib/log.js';
import { errnoName, koffi } from '../sys/libc.js';
import * as sys from '../sys/fs.js';
import { refuse, type LayerLedger } from './entry-checks.js';
import { LayerRefusedError } from './errors.js';
import { xattrAllowed } from './paths.js';
import type { TarEntry } from './tar.js';

/*
 * Writes checked entries into a layer directory. Every name is opened
 * relative to a directory fd with openat2 and
 * RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, so no symlink — in this layer or
 * planted by an earlier one — is ever followed while writing. A parent that
 * is a symlink (here or in a lower layer) refuses the entry rather than being
 * resolved: that is what makes the multi-layer symlink attack impossible.
 */

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

export class LayerWriter {
  readonly #rootfd: number;
  readonly #lowerFds: number[] = [];
  readonly #dirs = new DirCache();
  readonly #ledger: LayerLedger;
  readonly #log: Logger | undefined;
  readonly #lowerChecked = new Map<string, boolean>(); // prefix -> is a symlink in the top-most lower
  readonly #dirTimes: { key: string; atimeNs: bigint; mtimeNs: bigint }[] = [];

  /** Opens `dir` (existing, empty) and the lower layer dirs, highest first; `close()` lets them go. */
  constructor(dir: string, lowerDirs: string[], ledger: LayerLedger, log?: Logger) {
    this.#rootfd = sys.openat2(sys.AT_FDCWD, dir, sys.O_RDONLY | sys.O_DIRECTORY, 0, 0);
    if (this.#rootfd < 0) throw new LayerRefusedError('/', `cannot open layer dir ${dir}: ${errnoOf()}`);
    for (const l of lowerDirs) {
      const fd = sys.openat2(sys.AT_FDCWD, l, sys.O_PATH | sys.O_DIRECTORY, 0, 0);
      if (fd >= 0) this.#lowerFds.push(fd);
    }
    this.#dirs.set('', this.#rootfd);
    this.#ledger = ledger;
    this.#log = log;
  }

  close(): void {
    this.#dirs.closeAll();
    for (const fd of this.#lowerFds) closeSync(fd);
  }

  /** fd of the directory `parts` inside the layer, creating missing directories (0755, root-owned). */
  parentFd(entry: string, parts: string[]): number {
    const key = parts.join('/');
    const cached = this.#dirs.get(key);
    if (cached !== undefined) return cached;
    const up = this.parentFd(entry, parts.slice(0, -1));
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
      if (this.#lowerIsSymlink(key))
        refuse(entry, `its parent ${key} is a symlink in a lower layer; writing through it could escape`);
      if (sys.mkdirat(up, name, 0o755) < 0) refuse(entry, `mkdir ${key}: ${errnoOf()}`);
      this.#ledger.madeDirectory(key);
      fd = sys.openat2(up, name, sys.O_RDONLY | sys.O_DIRECTORY | sys.O_NOFOLLOW, 0, RESOLVE);
      if (fd < 0) refuse(entry, `open ${key}: ${errnoOf()}`);
    }
    this.#dirs.set(key, fd);
    return fd;
  }

  /** Whether `key` is a symlink in the top-most lower layer that has it. */
  #lowerIsSymlink(key: string): boolean {
    let r = this.#lowerChecked.get(key);
    if (r !== undefined) return r;
    r = false;
    for (const lfd of this.#lowerFds) {
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
    this.#lowerChecked.set(key, r);
    return r;
  }

  /** Marks directory `parts` opaque, the way overlayfs reads it. */
  opaque(entry: TarEntry, parts: string[]): void {
    const fd = this.parentFd(entry.path, parts);
    if (sys.fsetxattr(fd, 'trusted.overlay.opaque', Buffer.from('y'), 1, 0) < 0) {
      refuse(entry.path, `set trusted.overlay.opaque: ${errnoOf()} (the agent must run as root)`);
    }
  }

  /** A whiteout is a char 0/0 node, the way overlayfs reads it. */
  whiteout(entry: TarEntry, pfd: number, name: string): void {
    if (sys.mknodat(pfd, name, sys.S_IFCHR, 0n) < 0) refuse(entry.path, `mknod whiteout: ${errnoOf()}`);
    if (sys.fchownat(pfd, name, entry.uid, entry.gid, sys.AT_SYMLINK_NOFOLLOW) < 0)
      refuse(entry.path, `lchown: ${errnoOf()}`);
  }

  /** A directory entry (`wasImplicit`: already made for earlier entries); its times are set by `restoreDirectoryTimes`. */
  directory(entry: TarEntry, pfd: number, parts: string[], wasImplicit: boolean): void {
    if (!wasImplicit && sys.mkdirat(pfd, parts[parts.length - 1]!, 0o700) < 0)
      refuse(entry.path, `mkdir: ${errnoOf()}`);
    const fd = this.parentFd(entry.path, parts);
    fchownSync(fd, entry.uid, entry.gid);
    fchmodSync(fd, entry.mode);
    this.#setXattrs(entry, fd, 'dir');
    this.#dirTimes.push({ key: parts.join('/'), atimeNs: entry.atimeNs ?? entry.mtimeNs, mtimeNs: entry.mtimeNs });
  }

  async file(entry: TarEntry, pfd: number, name: string, body: AsyncIterable<Buffer>): Promise<void> {
    const fd = sys.openat2(pfd, name, sys.O_WRONLY | sys.O_CREAT | sys.O_EXCL | sys.O_NOFOLLOW, 0o600, RESOLVE);
    if (fd < 0) refuse(entry.path, `create: ${errnoOf()}`);
    try {
      for await (const chunk of body) {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
      }
      fchownSync(fd, entry.uid, entry.gid);
      fchmodSync(fd, entry.mode); // after chown, which clears setuid
      this.#setXattrs(entry, fd, 'file');
      if (sys.futimens(fd, entry.atimeNs ?? entry.mtimeNs, entry.mtimeNs) < 0)
        refuse(entry.path, `futimens: ${errnoOf()}`);
    } finally {
      closeSync(fd);
    }
  }

  symlink(entry: TarEntry, pfd: number, name: string): void {
    if (sys.symlinkat(entry.linkname, pfd, name) < 0) refuse(entry.path, `symlink: ${errnoOf()}`);
    this.#ownAndTime(entry, pfd, name);
  }

  /** A hard link to `target`, a regular file this layer wrote (the ledger checked that). */
  hardlink(entry: TarEntry, pfd: number, name: string, target: string): void {
    const tfd = sys.openat2(this.#rootfd, target, sys.O_PATH | sys.O_NOFOLLOW, 0, RESOLVE);
    if (tfd < 0) refuse(entry.path, `open hardlink target: ${errnoOf()}`);
    try {
      if (sys.linkat(tfd, '', pfd, name, sys.AT_EMPTY_PATH) < 0) refuse(entry.path, `link: ${errnoOf()}`);
    } finally {
      closeSync(tfd);
    }
  }

  /** A char or block device or a fifo. */
  node(entry: TarEntry, pfd: number, name: string): void {
    const fmt = entry.type === 'char' ? sys.S_IFCHR : entry.type === 'block' ? sys.S_IFBLK : sys.S_IFIFO;
    const dev = entry.type === 'fifo' ? 0n : sys.makedev(entry.devmajor, entry.devminor);
    if (sys.mknodat(pfd, name, fmt | entry.mode, dev) < 0) refuse(entry.path, `mknod: ${errnoOf()}`);
    if (sys.fchownat(pfd, name, entry.uid, entry.gid, sys.AT_SYMLINK_NOFOLLOW) < 0)
      refuse(entry.path, `lchown: ${errnoOf()}`);
    // The node was just created by us in a private dir, so following is not a concern for chmod.
    if (sys.fchmodat(pfd, name, entry.mode, 0) < 0) refuse(entry.path, `chmod: ${errnoOf()}`);
    this.#ownAndTime(entry, pfd, name);
  }

  /** Directory times last: creating children changed them. */
  restoreDirectoryTimes(): void {
    for (const d of this.#dirTimes.reverse()) {
      const fd = sys.openat2(this.#rootfd, d.key, sys.O_RDONLY | sys.O_DIRECTORY | sys.O_NOFOLLOW, 0, RESOLVE);
      if (fd < 0) continue;
      sys.futimens(fd, d.atimeNs, d.mtimeNs);
      closeSync(fd);
    }
  }

  #setXattrs(entry: TarEntry, fd: number, kind: 'file' | 'dir'): void {
    for (const [name, value] of entry.xattrs) {
      if (!xattrAllowed(name, kind)) {
        this.#log?.debug({ entry: entry.path, xattr: name }, 'xattr dropped');
        continue;
      }
      if (sys.fsetxattr(fd, name, value, value.length, 0) < 0) {
        const code = errnoOf();
        if (code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') refuse(entry.path, `setxattr ${name}: ${code}`);
      }
    }
  }

  #ownAndTime(entry: TarEntry, pfd: number, name: string): void {
    if (sys.fchownat(pfd, name, entry.uid, entry.gid, sys.AT_SYMLINK_NOFOLLOW) < 0)
      refuse(entry.path, `lchown: ${errnoOf()}`);
    if (sys.utimensat(pfd, name, entry.atimeNs ?? entry.mtimeNs, entry.mtimeNs, sys.AT_SYMLINK_NOFOLLOW) < 0) {
      refuse(entry.path, `utimensat: ${errnoOf()}`);
    }
  }
}
