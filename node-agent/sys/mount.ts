import { check, libc, type CallSite } from './libc.js';

/* Mount-table syscalls for building a container root inside its own mount namespace. */

export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REMOUNT = 0x20;
export const MS_BIND = 0x1000;
export const MS_MOVE = 0x2000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 0x40000;
export const MS_SLAVE = 0x80000;
export const MS_STRICTATIME = 0x1000000;
export const MNT_DETACH = 0x2;

const SYS_PIVOT_ROOT = 155;

const mountFn = libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)');
const umount2Fn = libc.func('int umount2(const char *target, int flags)');
const syscallFn = libc.func('long syscall(long number, ...)');
const chdirFn = libc.func('int chdir(const char *path)');
const fchdirFn = libc.func('int fchdir(int fd)');
const mknodFn = libc.func('int mknod(const char *path, uint32_t mode, uint64_t dev)');

export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null, site: CallSite): void {
  check(`mount ${fstype ?? 'bind'} on ${target}`, site, () => mountFn(source, target, fstype, flags, data));
}

export function umount2(target: string, flags: number, site: CallSite): void {
  check(`umount2 ${target}`, site, () => umount2Fn(target, flags));
}

/** pivot_root has no glibc wrapper. */
export function pivotRoot(newRoot: string, putOld: string, site: CallSite): void {
  check('pivot_root', site, () => Number(syscallFn(SYS_PIVOT_ROOT, 'const char *', newRoot, 'const char *', putOld)));
}

export function chdir(path: string, site: CallSite): void {
  check(`chdir ${path}`, site, () => chdirFn(path));
}

export function fchdir(fd: number, site: CallSite): void {
  check('fchdir', site, () => fchdirFn(fd));
}

export function mknod(path: string, mode: number, major: number, minor: number, site: CallSite): void {
  // glibc's makedev: the 64-bit dev_t layout the kernel expects from userspace.
  const dev =
    (BigInt(major & 0xfffff000) << 32n) |
    (BigInt(major & 0xfff) << 8n) |
    (BigInt(minor & 0xffffff00) << 12n) |
    BigInt(minor & 0xff);
  check(`mknod ${path}`, site, () => mknodFn(path, mode, dev));
}
