import {
  closeSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { SANDBOX_ID_PATTERN } from '../contracts.js';

/*
 * Each sandbox's state lives in <root>/<id>/ and is written so that an agent
 * crash leaves either the old or the new record, never half of one (a temp
 * file and a rename, or one single-page write in place: writeJsonInPlace). No fsync: the record only has to survive the
 * agent, not the node -- after a power loss no sandbox process survives either,
 * and recovery tears down whatever a stale record describes. (An fsync per
 * write cost 2-5 ms each, four times on the create path.)
 */

export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(value));
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** One page: a write of at most this much at offset 0 lands whole or not at all. */
const PAGE = 4096;

/**
 * Rewrites a JSON record in place when it can do so just as safely, else
 * falls back to writeJsonAtomic. A record that is rewritten often (a
 * sandbox's, four times per create) then costs no new inode per write: on
 * ext4 without a journal (this VM's root) allocating inodes right after many
 * were freed costs about a millisecond each, most of the state-write time.
 *
 * Why it is safe: the new text, padded with spaces to the file's current
 * length (JSON allows trailing whitespace), goes out in one write at offset 0
 * that fits one page. The kernel copies a page into the page cache in one
 * step and checks for a fatal signal only between pages, so a SIGKILLed agent
 * leaves the old record or the new one. Nothing is ever truncated. Larger
 * records, or a file that is not there yet, take the temp-file-and-rename path.
 */
export function writeJsonInPlace(file: string, value: unknown): void {
  const text = JSON.stringify(value);
  if (Buffer.byteLength(text) <= PAGE) {
    let fd: number | undefined;
    try {
      fd = openSync(file, 'r+');
    } catch {
      /* not there yet: create it atomically below */
    }
    if (fd !== undefined) {
      try {
        const size = fstatSync(fd).size;
        if (size <= PAGE) {
          const buf = Buffer.alloc(Math.max(size, Buffer.byteLength(text)), ' ');
          buf.write(text, 0);
          if (writeSync(fd, buf, 0, buf.length, 0) === buf.length) return;
        }
      } finally {
        closeSync(fd);
      }
    }
  }
  writeJsonAtomic(file, value);
}

export function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export class StateStore {
  readonly root: string;
  constructor(root: string) {
    this.root = root;
    mkdirSync(root, { recursive: true, mode: 0o700 });
  }
  sandboxDir(id: string): string {
    return join(this.root, id);
  }
  containerDir(id: string, name: string): string {
    return join(this.root, id, 'containers', name);
  }
  /** Ids with a directory in the state root. */
  list(): string[] {
    return readdirSync(this.root).filter((e) => SANDBOX_ID_PATTERN.test(e));
  }
  remove(id: string): void {
    rmSync(this.sandboxDir(id), { recursive: true, force: true });
  }
}
