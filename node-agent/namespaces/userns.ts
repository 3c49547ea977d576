import { readSync, writeFileSync } from 'node:fs';
import { SandpitError } from '../../lib/errors.js';
import { pipe } from '../process/exec-io.js';
import type { CallSite } from '../sys/libc.js';
import { mount, MS_BIND } from '../sys/mount.js';
import { close, kill, open, O_CLOEXEC, O_RDONLY, O_WRONLY, O_CREAT, reapChild } from '../sys/proc.js';
import { spawnFromThread } from '../sys/spawn.js';

/*
 * User namespaces for hostUsers: false sandboxes, as Kubernetes gives a pod:
 * container ids 0..65535 map to a block of host ids of the same size that no
 * other live sandbox on the node uses. Container root is then root only over
 * the sandbox's own namespaces and files; on the host it is an unprivileged id.
 *
 * The namespace outlives any process: its /proc/PID/ns/user is bind-mounted
 * onto a file in the sandbox's state dir, where a restarted agent opens it
 * again and where teardown (and the orphan sweep at start, which unmounts
 * whatever is mounted under the state root) finds it.
 */

/** Ids per sandbox: container 0..65535, as Kubernetes maps a pod. */
export const USERNS_SIZE = 65536;

/** Host ids the agent may hand out, in whole blocks of USERNS_SIZE from `first`. */
export interface UsernsRange {
  first: number;
  count: number;
}

/**
 * "FIRST:COUNT" (host ids, as in /etc/subuid). FIRST must be at least 65536
 * (no block may contain a system id, least of all 0) and COUNT at least one block.
 */
export function parseUsernsRange(text: string): UsernsRange {
  const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(text);
  const first = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || first < USERNS_SIZE || count < USERNS_SIZE || first + count > 2 ** 32 - 1)
    throw new SandpitError({
      step: 'read the user namespace range',
      message: `SANDPIT_USERNS_RANGE ${JSON.stringify(text)} is not FIRST:COUNT with FIRST >= 65536, COUNT >= 65536 and FIRST+COUNT below 2^32-1`,
      hint: 'for example 1073741824:1073741824 (16384 sandboxes of 65536 ids)',
    });
  return { first, count };
}

/**
 * The lowest block base in `range` whose ids no block in `used` (bases of
 * USERNS_SIZE ids each) shares; undefined when none is left. A used block
 * need not be aligned to this range: it may come from a range the agent ran
 * with before, and still runs.
 */
export function allocateUsernsBlock(range: UsernsRange, used: Iterable<number>): number | undefined {
  const bases = [...used];
  const blocks = Math.floor(range.count / USERNS_SIZE);
  for (let i = 0; i < blocks; i++) {
    const candidate = range.first + i * USERNS_SIZE;
    if (!bases.some((b) => Math.abs(b - candidate) < USERNS_SIZE)) return candidate;
  }
  return undefined;
}

/**
 * Creates a user namespace mapping 0..USERNS_SIZE-1 to base.. and pins it at
 * `pinPath` (a new file). The namespace is made by `sandpit-init userns`
 * (single-threaded), which waits while the maps are written and the bind
 * mount is made, and is reaped before this returns.
 */
export async function createUserNamespace(
  initBinary: string,
  base: number,
  pinPath: string,
  site: CallSite,
): Promise<void> {
  const [readyRead, readyWrite] = pipe(site);
  const [goRead, goWrite] = pipe(site);
  const devnull = open('/dev/null', O_WRONLY | O_CLOEXEC, 0, site);
  let pid: number | undefined;
  try {
    try {
      pid = spawnFromThread(
        initBinary,
        ['sandpit-init', 'userns', '3', '4'],
        {},
        [devnull, devnull, 2, readyWrite, goRead],
        '/',
        { ...site, step: `${site.step}: start sandpit-init userns` },
      );
    } finally {
      close(readyWrite);
      close(goRead);
    }
    // It unshares and answers at once; EOF means it died (it wrote why to the agent's stderr).
    const buf = Buffer.alloc(16);
    const n = readSync(readyRead, buf);
    if (!buf.toString('utf8', 0, n).includes('ready'))
      throw new SandpitError({
        ...site,
        message: 'sandpit-init could not create a user namespace',
        hint: 'the kernel must allow user namespaces (user.max_user_namespaces > 0)',
      });
    const map = `0 ${base} ${USERNS_SIZE}\n`;
    writeFileSync(`/proc/${pid}/uid_map`, map);
    writeFileSync(`/proc/${pid}/gid_map`, map);
    close(open(pinPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600, site));
    mount(`/proc/${pid}/ns/user`, pinPath, null, MS_BIND, null, {
      ...site,
      step: `${site.step}: pin the user namespace`,
    });
  } finally {
    close(readyRead);
    close(goWrite); // EOF: the helper exits
    close(devnull);
    if (pid !== undefined) await reap(pid, site);
  }
}

async function reap(pid: number, site: CallSite): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (reapChild(pid, site) !== null) return;
    await new Promise((r) => setTimeout(r, 2));
  }
  kill(pid, 9, site);
  while (reapChild(pid, site) === null) await new Promise((r) => setTimeout(r, 2));
}

/** An fd of the pinned namespace (close it after use). */
export function openUserNamespace(pinPath: string, site: CallSite): number {
  return open(pinPath, O_RDONLY | O_CLOEXEC, 0, { ...site, step: `${site.step}: open the sandbox user namespace` });
}
