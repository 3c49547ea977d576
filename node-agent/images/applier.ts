import type { Logger } from '../../lib/log.js';
import { LayerLedger, type EntryLimits } from './entry-checks.js';
import { LayerRefusedError } from './errors.js';
import { LayerWriter } from './layer-writer.js';
import { ByteReader, readTar, TarFormatError } from './tar.js';

/*
 * Applies one layer tar into its own empty directory, which later serves as
 * an overlayfs lower dir. Because every layer gets a fresh directory, applying
 * never deletes anything: whiteouts become char 0/0 nodes and opaque markers
 * become trusted.overlay.opaque=y, exactly what overlayfs reads.
 *
 * Each entry is checked against the layer so far (entry-checks.ts, pure),
 * then written without following any symlink (layer-writer.ts); the
 * checks that need the disk — a parent that is a symlink here or in a lower
 * layer — refuse the entry there.
 */

export interface ApplyLimits extends EntryLimits {
  /** Uncompressed bytes per layer. */
  maxBytes: number;
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

/**
 * Reads an uncompressed layer tar from `tar` and writes it into `dir` (which
 * must exist and be empty). Throws LayerRefusedError naming the first entry it
 * will not write; the caller discards the directory then.
 */
export async function applyLayer(tar: AsyncIterable<Buffer>, dir: string, opts: ApplyOptions): Promise<ApplyResult> {
  const ledger = new LayerLedger(opts.limits);
  const writer = new LayerWriter(dir, opts.lowerDirs, ledger, opts.log);
  try {
    for await (const { entry, body } of readTar(new ByteReader(tar), { maxMetaBytes: 1024 * 1024 })) {
      const a = ledger.admit(entry);
      if (a.kind === 'skip') continue;
      if (a.kind === 'opaque') {
        writer.opaque(entry, a.parts);
        continue;
      }
      const pfd = writer.parentFd(entry.path, a.parts.slice(0, -1));
      const placed = ledger.place(entry, a);
      if (a.kind === 'whiteout') {
        writer.whiteout(entry, pfd, a.name);
        continue;
      }
      switch (entry.type) {
        case 'dir':
          writer.directory(entry, pfd, a.parts, placed.wasImplicit);
          break;
        case 'file':
          await writer.file(entry, pfd, a.name, body());
          ledger.wroteFile(a.key);
          break;
        case 'symlink':
          writer.symlink(entry, pfd, a.name);
          break;
        case 'hardlink':
          writer.hardlink(entry, pfd, a.name, placed.linkTarget!);
          ledger.wroteFile(a.key);
          break;
        case 'char':
        case 'block':
        case 'fifo':
          writer.node(entry, pfd, a.name);
          break;
      }
    }
    writer.restoreDirectoryTimes();
  } catch (err) {
    if (err instanceof TarFormatError)
      throw new LayerRefusedError(`#${ledger.entries}`, `malformed archive: ${err.detail}`);
    throw err;
  } finally {
    writer.close();
  }
  return { entries: ledger.entries };
}
