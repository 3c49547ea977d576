import { existsSync, lstatSync, mkdirSync, symlinkSync, writeFileSync, unlinkSync } from 'node:fs';
import { SandpitError } from '../../lib/errors.js';
import type { CallSite } from '../sys/libc.js';
import {
  chdir,
  mount,
  mountIdmapped,
  MNT_DETACH,
  MS_BIND,
  MS_NODEV,
  MS_NOEXEC,
  MS_NOSUID,
  MS_RDONLY,
  MS_REC,
  MS_REMOUNT,
  MS_SLAVE,
  pivotRoot,
  umount2,
} from '../sys/mount.js';
import type { RootfsStep } from './plan.js';
import { close, open, O_CLOEXEC, O_DIRECTORY, O_PATH } from '../sys/proc.js';
import { makeWorkingDir } from './workdir.js';

/*
 * Carries out a rootfs plan on the calling thread, which must already be alone
 * in a fresh mount namespace. Only synchronous fs calls are used: they run on
 * this thread and therefore see this thread's mounts; async ones would run on
 * libuv's pool threads, which live in the host's mount namespace.
 */

/**
 * Refuses a target whose path inside the root crosses a symlink: before
 * pivot_root a symlink planted by the image would resolve against the host.
 */
function assertNoSymlink(root: string, path: string, site: CallSite, leafMayBeLink = false): void {
  if (!path.startsWith(root)) return;
  const parts = path.slice(root.length).split('/').filter(Boolean);
  let cur = root;
  for (let i = 0; i < parts.length; i++) {
    cur += `/${parts[i]}`;
    let st;
    try {
      st = lstatSync(cur);
    } catch {
      return;
    }
    if (st.isSymbolicLink()) {
      if (leafMayBeLink && i === parts.length - 1) {
        unlinkSync(cur); // /etc/resolv.conf and friends are often links in images: replace them
        return;
      }
      throw new SandpitError({
        ...site,
        message: `${path.slice(root.length)} is or crosses a symlink in the image; refusing to mount over it`,
      });
    }
  }
}

/**
 * `mountProc` carries out a 'proc' step: only a process inside a PID namespace
 * can mount its /proc, so the launcher starts the container's PID 1 there.
 */
export function applyRootfs(
  root: string,
  steps: RootfsStep[],
  site: CallSite,
  mountProc?: (target: string) => void,
): void {
  // Mounts we make must not propagate back into the infra namespace or the host.
  mount(null, '/', null, MS_SLAVE | MS_REC, null, site);
  for (const s of steps) {
    const at = {
      ...site,
      step: `${site.step}: ${s.op} ${'path' in s ? s.path.slice(root.length) : s.target.startsWith(root) ? s.target.slice(root.length) || '/' : s.target}`,
    };
    switch (s.op) {
      case 'mkdir':
        assertNoSymlink(root, s.path, at);
        mkdirSync(s.path, { recursive: true, mode: s.mode });
        break;
      case 'touch':
        assertNoSymlink(root, s.path, at, true);
        if (!existsSync(s.path)) writeFileSync(s.path, '', { mode: 0o644 });
        break;
      case 'symlink':
        assertNoSymlink(root, s.path, at, true);
        if (!existsSync(s.path)) symlinkSync(s.target, s.path);
        break;
      case 'proc':
        assertNoSymlink(root, s.target, at);
        if (!mountProc)
          throw new SandpitError({ ...at, message: 'a /proc of its own PID namespace needs a PID 1 to mount it' });
        mountProc(s.target);
        break;
      case 'idmap':
        mountIdmapped(s.source, s.target, s.userns, at);
        break;
      case 'detach':
        umount2(s.target, MNT_DETACH, at);
        break;
      case 'mount':
        if (s.target !== root) assertNoSymlink(root, s.target, at);
        mount(s.source, s.target, s.fstype, s.flags, s.data, at);
        break;
      case 'mask': {
        let st;
        try {
          st = lstatSync(s.path);
        } catch {
          break;
        }
        if (st.isDirectory()) mount('tmpfs', s.path, 'tmpfs', MS_RDONLY, 'size=0,nr_inodes=1', at);
        else mount(`${root}/dev/null`, s.path, null, MS_BIND, null, at);
        break;
      }
      case 'readonly':
        if (!existsSync(s.path)) break;
        mount(s.path, s.path, null, MS_BIND | MS_REC, null, at);
        // Every read-only path is under /proc: keep proc's nosuid,nodev,noexec through the remount.
        mount(null, s.path, null, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, null, at);
        break;
    }
  }
}

/**
 * pivot_root(".", ".") and detach the old root, as runc does: no put_old
 * directory needed. Then, as runc, the working directory is made if missing
 * (before a read-only root is remounted so).
 */
export function enterRoot(
  root: string,
  readOnly: boolean,
  site: CallSite,
  workingDir?: { path: string; owner: number },
): void {
  chdir(root, site);
  pivotRoot('.', '.', site);
  mount(null, '.', null, MS_SLAVE | MS_REC, null, site);
  umount2('.', MNT_DETACH, site);
  chdir('/', site);
  if (workingDir) {
    const rootFd = open('/', O_PATH | O_DIRECTORY | O_CLOEXEC, 0, site);
    try {
      makeWorkingDir(rootFd, workingDir.path, workingDir.owner, {
        ...site,
        step: `${site.step}: workingDir ${workingDir.path}`,
      });
    } finally {
      close(rootFd);
    }
  }
  if (readOnly)
    mount(null, '/', null, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NODEV, null, {
      ...site,
      step: `${site.step}: read-only root`,
    });
}
