import { existsSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SandpitError } from '../../lib/errors.js';

/* The cgroup filesystem operations of the manager, each failure a SandpitError naming the file. */

export type Site = { sandbox?: string; step: string };

export function write(file: string, value: string, site: Site): void {
  try {
    writeFileSync(file, value);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SandpitError({ ...site, message: `write ${value} to ${file} failed: ${code}`, code, cause: err });
  }
}

export function mkdir(dir: string, site: Site): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SandpitError({ ...site, message: `mkdir ${dir} failed: ${code}`, code, cause: err });
  }
}

/**
 * The child cgroups of `dir`; none when `dir` is gone (a cgroup removed
 * meanwhile). Any other failure is raised: read as "no children", EACCES
 * would make recovery and GC see no sandboxes at all.
 */
export function childCgroups(dir: string, site: Site): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    throw new SandpitError({ ...site, message: `list ${dir} failed: ${code}`, code, cause: err });
  }
}

/**
 * Removes `dir` and every cgroup below it, deepest first. A cgroup whose last
 * process just died is EBUSY for a few milliseconds (the kernel frees it
 * asynchronously): retried on a timer, so other sandboxes are served meanwhile.
 */
export async function removeTree(dir: string, site: Site): Promise<void> {
  if (!existsSync(dir)) return;
  for (const child of childCgroups(dir, site)) await removeTree(join(dir, child), site);
  for (let attempt = 0; ; attempt++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code === 'EBUSY' && attempt < 200) {
        await sleep(5);
        continue;
      }
      throw new SandpitError({ ...site, message: `rmdir ${dir} failed: ${code}`, code, cause: err });
    }
  }
}

export function trySilently(fn: () => void): void {
  try {
    fn();
  } catch {
    /* best effort while killing */
  }
}
