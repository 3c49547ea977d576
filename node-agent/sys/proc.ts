import { check, koffi, libc, type CallSite } from './libc.js';

/*
 * Process syscalls. No credential call lives here on purpose: the agent never
 * changes its own (or a thread's) credentials; sandpit-init takes on a
 * container's identity in the child (native/sandpit-init.c, become()).
 */

const SYS = {
  kill: 62,
  waitid: 247,
  pidfdOpen: 434,
  pidfdGetfd: 438,
} as const;

const syscallFn = libc.func('long syscall(long number, ...)');
const closeFn = libc.func('int close(int fd)');
const openFn = libc.func('int open(const char *path, int flags, uint32_t mode)');

function raw(call: string, site: CallSite, ...args: unknown[]): number {
  const nr = SYS[call as keyof typeof SYS];
  return Number(check(call, site, () => syscallFn(nr, ...args) as number | bigint));
}

export function pidfdOpen(pid: number, site: CallSite): number {
  return raw('pidfdOpen', site, 'int', pid, 'unsigned int', 0);
}

/** A duplicate (close-on-exec) of fd `targetFd` of the process behind `pidfd`. */
export function pidfdGetfd(pidfd: number, targetFd: number, site: CallSite): number {
  return raw('pidfdGetfd', site, 'int', pidfd, 'int', targetFd, 'unsigned int', 0);
}

export const P_PID = 1;
export const WEXITED = 4;
export const WNOHANG = 1;

/**
 * Reaps `pid` if it is our child and has exited. Returns null while it runs,
 * 'not-child' when it is not ours to reap (re-adopted after an agent restart).
 */
export function reapChild(pid: number, site: CallSite): { code: number; status: number } | null | 'not-child' {
  const info = Buffer.alloc(128);
  koffi.errno(0);
  const r = Number(
    syscallFn(SYS.waitid, 'int', P_PID, 'int', pid, 'void *', info, 'int', WEXITED | WNOHANG, 'void *', null),
  );
  if (r < 0) {
    if (koffi.errno() === 10 /* ECHILD */) return 'not-child';
    check('waitid', site, () => -1);
  }
  const siPid = info.readInt32LE(16);
  if (siPid === 0) return null;
  return { code: info.readInt32LE(8), status: info.readInt32LE(24) };
}

/** kill(2); returns false when the process is gone (ESRCH). */
export function kill(pid: number, signal: number, site: CallSite): boolean {
  koffi.errno(0);
  const r = Number(syscallFn(SYS.kill, 'int', pid, 'int', signal));
  if (r < 0) {
    if (koffi.errno() === 3) return false;
    check('kill', site, () => -1);
  }
  return true;
}

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_NONBLOCK = 0o4000;
export const O_NOCTTY = 0o400;
export const O_DIRECTORY = 0o200000;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;

export function open(path: string, flags: number, mode: number, site: CallSite): number {
  return check(`open ${path}`, site, () => openFn(path, flags, mode));
}

const dupFn = libc.func('int fcntl(int fd, int cmd, int arg)');
/** A close-on-exec duplicate of `fd`, numbered at least `min`. */
export function dup(fd: number, site: CallSite, min = 0): number {
  return check('fcntl F_DUPFD_CLOEXEC', site, () => dupFn(fd, 1030 /* F_DUPFD_CLOEXEC */, min));
}

export function close(fd: number): void {
  closeFn(fd);
}
