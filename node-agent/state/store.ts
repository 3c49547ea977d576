import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SANDBOX_ID_PATTERN } from '../contracts.js';

/*
 * Each sandbox's state lives in <root>/<id>/ and is written atomically (write a
 * temp file, rename), so an agent crash leaves either the old or the new
 * record, never half of one. No fsync: the record only has to survive the
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
