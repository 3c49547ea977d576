import { SandpitError } from '../../lib/errors.js';
import { closeSync, fstatSync, readSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import * as sys from '../sys/fs.js';

/*
 * Reads a small file (/etc/passwd, /etc/group) out of an image before any
 * container root is mounted: the path is resolved in the union the overlay
 * will show (highest layer wins, whiteouts hide, opaque directories stop the
 * merge) and every symlink is followed inside that union, never on the host.
 * The image is hostile: /etc/passwd may be a link to "/../../etc/shadow" or
 * to a host path. An absolute target restarts at the image root and ".."
 * stops there (RESOLVE_IN_ROOT's rule), and each layer is only ever entered
 * through openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so no link is
 * followed by the kernel at all.
 */

const RESOLVE = sys.RESOLVE_BENEATH | sys.RESOLVE_NO_SYMLINKS | sys.RESOLVE_NO_MAGICLINKS;
/** Symlinks followed before giving up, as the kernel's MAXSYMLINKS. */
const MAX_LINKS = 40;

/** A directory of the union: its path and the layers (indexes, highest first) that merge into it. */
interface UnionDir {
  rel: string[];
  layers: number[];
}

export class ImageFileError extends SandpitError {
  constructor(message: string) {
    super({ step: 'read a file of the image', message });
    this.name = 'ImageFileError';
  }
}

/**
 * The content of `path` as a container of these layers (lowest first, as
 * PreparedImage gives them) would read it, or undefined when it does not
 * exist there. Throws ImageFileError when it is not a regular file, is larger
 * than `maxBytes` or its symlinks loop.
 */
export function readImageFile(layers: string[], path: string, maxBytes = 4 << 20): Buffer | undefined {
  const top = [...layers].reverse();
  const roots: number[] = [];
  const open: number[] = [];
  try {
    for (const dir of top) {
      const fd = sys.openat2(sys.AT_FDCWD, dir, sys.O_PATH | sys.O_DIRECTORY, 0, 0);
      if (fd < 0) throw new ImageFileError(`cannot open image layer ${dir}`);
      roots.push(fd);
    }
    const root: UnionDir = { rel: [], layers: roots.map((_, i) => i) };
    let stack: UnionDir[] = [root];
    const todo = path.split('/').filter(Boolean);
    let links = 0;
    while (todo.length) {
      const name = todo.shift()!;
      if (name === '.') continue;
      if (name === '..') {
        if (stack.length > 1) stack.pop();
        continue;
      }
      const dir = stack[stack.length - 1]!;
      const rel = [...dir.rel, name].join('/');
      const found = lookup(top, roots, dir.layers, rel, open);
      if (!found || isWhiteout(found.st)) return undefined;
      if (found.st.isSymbolicLink()) {
        if (++links > MAX_LINKS) throw new ImageFileError(`too many symbolic links resolving ${path}`);
        const target = sys.readlinkat(found.fd, '');
        if (target === undefined) throw new ImageFileError(`cannot read the link ${rel}`);
        if (target.startsWith('/')) stack = [root];
        todo.unshift(...target.split('/').filter(Boolean));
      } else if (found.st.isDirectory()) {
        stack.push({ rel: [...dir.rel, name], layers: found.merged });
      } else if (todo.length) {
        return undefined; // a file in the middle of the path: ENOTDIR
      } else if (!found.st.isFile()) {
        throw new ImageFileError(`${path} is not a regular file`);
      } else {
        return readBeneath(roots[found.layer]!, rel, path, maxBytes, open);
      }
    }
    return undefined; // the path names a directory (or the root)
  } finally {
    for (const fd of [...open, ...roots]) closeSync(fd);
  }
}

/**
 * The highest layer holding `rel` (an O_PATH fd to it, its stat) and, when it
 * is a directory, the layers whose directories merge with it: down to the
 * first opaque one, stopping at a lower non-directory.
 */
function lookup(
  dirs: string[],
  roots: number[],
  layers: number[],
  rel: string,
  open: number[],
): { layer: number; fd: number; st: Stats; merged: number[] } | undefined {
  let hit: { layer: number; fd: number; st: Stats; merged: number[] } | undefined;
  for (const i of layers) {
    // ENOENT, or ELOOP/ENOTDIR from a link or file in this layer's copy of the path: not here.
    const fd = sys.openat2(roots[i]!, rel, sys.O_PATH | sys.O_NOFOLLOW, 0, RESOLVE);
    if (fd < 0) continue;
    open.push(fd);
    const st = fstatSync(fd);
    if (!hit) hit = { layer: i, fd, st, merged: [] };
    if (!hit.st.isDirectory() || !st.isDirectory()) break;
    hit.merged.push(i);
    if (isOpaque(join(dirs[i]!, rel))) break;
  }
  return hit;
}

const isWhiteout = (st: Stats) => st.isCharacterDevice() && st.rdev === 0;

/**
 * trusted.overlay.opaque=y. Read by path: openat2 has just shown that no
 * component of `rel` in this layer is a link, and layers never change once unpacked.
 */
function isOpaque(path: string): boolean {
  return sys.lgetxattr(path, 'trusted.overlay.opaque')?.toString() === 'y';
}

function readBeneath(root: number, rel: string, path: string, maxBytes: number, open: number[]): Buffer {
  const fd = sys.openat2(root, rel, sys.O_RDONLY | sys.O_NOFOLLOW, 0, RESOLVE);
  if (fd < 0) throw new ImageFileError(`cannot open ${path}`);
  open.push(fd);
  const size = fstatSync(fd).size;
  if (size > maxBytes) throw new ImageFileError(`${path} is ${size} bytes, more than the ${maxBytes} read`);
  const buf = Buffer.alloc(size);
  let off = 0;
  while (off < size) {
    const n = readSync(fd, buf, off, size - off, off);
    if (n === 0) break;
    off += n;
  }
  return buf.subarray(0, off);
}
