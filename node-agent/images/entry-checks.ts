import { LayerRefusedError } from './errors.js';
import { classifyEntry, splitLinkTarget } from './paths.js';
import type { TarEntry } from './tar.js';

/*
 * The checks every entry of a layer passes before it is written, against
 * what the same layer wrote before: pure, so each refusal has a
 * root-free test. What only the disk can tell (a symlink on the way, in this
 * layer or a lower one) is checked by the writer, with O_NOFOLLOW.
 *
 * Together with the writer these are the README's "refuse rather than
 * redirect": the first entry that fails refuses the whole layer.
 */

export interface EntryLimits {
  /** Entries per layer. */
  maxEntries: number;
  /** Devices (char/block) allowed; whiteouts are always written. */
  allowDevices: boolean;
  maxDepth: number;
}

/** Refuses the entry, and so the whole layer. */
export function refuse(entry: string, why: string): never {
  throw new LayerRefusedError(entry, why);
}

/** Linux's PATH_MAX less the terminating NUL. */
const MAX_SYMLINK_TARGET_BYTES = 4095;
const MAX_DEVICE_NUMBER = 0xffffffff;

/** An entry that passed the name checks: nothing to write, an opaque marker on `parts`, or a name to write. */
export type Admitted =
  | { kind: 'skip' }
  | { kind: 'opaque'; parts: string[] }
  | { kind: 'whiteout' | 'path'; parts: string[]; key: string; name: string };

/** How to write an entry placed in its parent: over a directory made for earlier entries, or as a hard link to `linkTarget`. */
export interface Placement {
  wasImplicit: boolean;
  linkTarget?: string;
}

/** What one layer has written so far, and the decisions that depend on it. */
export class LayerLedger {
  readonly #limits: EntryLimits;
  #entries = 0;
  readonly #written = new Set<string>(); // paths an entry of this layer has written
  readonly #implicitDirs = new Set<string>(); // parents made for deeper entries
  readonly #files = new Set<string>(); // regular files of this layer, valid hardlink targets

  constructor(limits: EntryLimits) {
    this.#limits = limits;
  }

  /** Entries read so far, whatever became of them. */
  get entries(): number {
    return this.#entries;
  }

  /**
   * The checks before the entry's parent is opened: the entry count, the
   * name (traversal, whiteout forms), a second entry for the same path.
   * The root and reserved .wh..wh. names are skipped: the image spec gives them no meaning.
   */
  admit(entry: TarEntry): Admitted {
    if (++this.#entries > this.#limits.maxEntries)
      refuse(entry.path, `layer has more than ${this.#limits.maxEntries} entries`);
    const c = classifyEntry(entry.path, this.#limits.maxDepth);
    if ('refused' in c) refuse(entry.path, c.refused);
    if (c.kind === 'root' || c.kind === 'reserved') return { kind: 'skip' };
    if (c.kind === 'opaque') return c;
    const key = c.parts.join('/');
    if (this.#written.has(key)) refuse(entry.path, 'duplicate entry in one layer');
    return { kind: c.kind, parts: c.parts, key, name: c.parts[c.parts.length - 1]! };
  }

  /**
   * The checks once the parent is open (and its missing directories made):
   * records the entry as written, then checks it against the directories
   * made for earlier entries and, by type, its link target or device numbers.
   */
  place(entry: TarEntry, a: { kind: 'whiteout' | 'path'; key: string }): Placement {
    this.#written.add(a.key);
    if (a.kind === 'whiteout') {
      if (this.#implicitDirs.has(a.key)) refuse(entry.path, 'whiteout of a directory this layer writes into');
      return { wasImplicit: false };
    }
    const wasImplicit = this.#implicitDirs.has(a.key);
    if (wasImplicit) {
      if (entry.type !== 'dir') refuse(entry.path, `is a ${entry.type} but earlier entries used it as a directory`);
      this.#implicitDirs.delete(a.key);
    }
    switch (entry.type) {
      case 'symlink':
        if (entry.linkname === '' || Buffer.byteLength(entry.linkname) > MAX_SYMLINK_TARGET_BYTES)
          refuse(entry.path, 'empty or oversized symlink target');
        break;
      case 'hardlink': {
        const t = splitLinkTarget(entry.linkname);
        if (!Array.isArray(t)) refuse(entry.path, `hardlink target ${JSON.stringify(entry.linkname)}: ${t.refused}`);
        const linkTarget = t.join('/');
        if (!this.#files.has(linkTarget)) {
          refuse(
            entry.path,
            `hardlink target ${JSON.stringify(entry.linkname)} is not a regular file written earlier in this layer`,
          );
        }
        return { wasImplicit, linkTarget };
      }
      case 'char':
      case 'block':
      case 'fifo':
        if (entry.type !== 'fifo' && !this.#limits.allowDevices)
          refuse(entry.path, 'device nodes are not allowed here');
        if (entry.devmajor > MAX_DEVICE_NUMBER || entry.devminor > MAX_DEVICE_NUMBER)
          refuse(entry.path, 'device number out of range');
        break;
    }
    return { wasImplicit };
  }

  /** The writer made directory `key` so a deeper entry has a parent. */
  madeDirectory(key: string): void {
    this.#implicitDirs.add(key);
  }

  /** `key` is a regular file of this layer (written, or hard-linked to one): later hard links may name it. */
  wroteFile(key: string): void {
    this.#files.add(key);
  }
}
