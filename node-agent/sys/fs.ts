import { koffi, libc } from './libc.js';

/*
 * fd-relative filesystem calls for the image layer applier. Every path the
 * applier touches is opened relative to a directory fd with openat2() and
 * RESOLVE_* flags, so a symlink in the layer (or planted by an earlier layer)
 * can never redirect a write to the host. Node's fs functions accept raw fds,
 * so only the *at() calls and openat2 are declared here.
 */

export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_DIRECTORY = 0o200000;
export const O_NOFOLLOW = 0o400000;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;

export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_EMPTY_PATH = 0x1000;

export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const RESOLVE_IN_ROOT = 0x10;

export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

const SYS_OPENAT2 = 437; // x86_64 and aarch64 share the number (added in 5.6).

const OpenHow = koffi.struct('sp_open_how', { flags: 'uint64', mode: 'uint64', resolve: 'uint64' });
const OPEN_HOW_SIZE = koffi.sizeof(OpenHow);
koffi.struct('sp_timespec', { tv_sec: 'int64', tv_nsec: 'long' });
// [atime, mtime] as one struct: koffi passes an object to a struct pointer.
koffi.struct('sp_timespec2', { atime: 'sp_timespec', mtime: 'sp_timespec' });

// openat2 has no glibc wrapper on bookworm: call it through syscall(2). Declared with fixed
// arguments rather than variadic: koffi's variadic path parses types per call and cost
// ~0.4 ms each, which dominated unpacking. On x86_64/aarch64 the two conventions agree for
// integer and pointer arguments, which is all syscall(2) reads.
const syscallOpenat2 = libc.func(
  'long syscall(long number, int dirfd, const char *path, sp_open_how *how, size_t size)',
);

export const mkdirat = libc.func('int mkdirat(int dirfd, const char *path, uint32 mode)');
export const mknodat = libc.func('int mknodat(int dirfd, const char *path, uint32 mode, uint64 dev)');
export const symlinkat = libc.func('int symlinkat(const char *target, int newdirfd, const char *linkpath)');
export const linkat = libc.func(
  'int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)',
);
export const fchownat = libc.func('int fchownat(int dirfd, const char *path, uint32 uid, uint32 gid, int flags)');
export const fchmodat = libc.func('int fchmodat(int dirfd, const char *path, uint32 mode, int flags)');
const utimensatRaw = libc.func('int utimensat(int dirfd, const char *path, sp_timespec2 *times, int flags)');
export const fsetxattr = libc.func(
  'int fsetxattr(int fd, const char *name, const void *value, size_t size, int flags)',
);
const lgetxattrRaw = libc.func('long lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)');

/** openat2(2): opens `path` relative to `dirfd` under the given RESOLVE_* rules. Returns the fd or -1 (errno set). */
export function openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number {
  const how = { flags: BigInt(flags | O_CLOEXEC), mode: BigInt(mode), resolve: BigInt(resolve) };
  const r = syscallOpenat2(SYS_OPENAT2, dirfd, path, how, OPEN_HOW_SIZE);
  return Number(r);
}

function timespec(ns: bigint) {
  const sec = ns / 1_000_000_000n;
  return { tv_sec: sec, tv_nsec: Number(ns - sec * 1_000_000_000n) };
}

/** utimensat(2) with whole-second-plus-nanosecond times; AT_SYMLINK_NOFOLLOW sets a symlink's own times. */
export function utimensat(dirfd: number, path: string, atimeNs: bigint, mtimeNs: bigint, flags: number): number {
  return utimensatRaw(dirfd, path, { atime: timespec(atimeNs), mtime: timespec(mtimeNs) }, flags);
}

const futimensRaw = libc.func('int futimens(int fd, sp_timespec2 *times)');

/** futimens(2) with nanosecond times. */
export function futimens(fd: number, atimeNs: bigint, mtimeNs: bigint): number {
  return futimensRaw(fd, { atime: timespec(atimeNs), mtime: timespec(mtimeNs) });
}

/** lgetxattr(2) into a buffer; returns the value or undefined when absent. For tests and checks. */
export function lgetxattr(path: string, name: string): Buffer | undefined {
  const buf = Buffer.alloc(65536);
  const n = Number(lgetxattrRaw(path, name, buf, buf.length));
  return n < 0 ? undefined : buf.subarray(0, n);
}

const readlinkatRaw = libc.func('long readlinkat(int dirfd, const char *path, _Out_ uint8_t *buf, size_t size)');

/** readlinkat(2); with path '' it reads the symlink an O_PATH|O_NOFOLLOW fd refers to. Undefined on failure. */
export function readlinkat(dirfd: number, path: string): string | undefined {
  const buf = Buffer.alloc(4096);
  const n = Number(readlinkatRaw(dirfd, path, buf, buf.length));
  return n < 0 || n >= buf.length ? undefined : buf.toString('utf8', 0, n);
}

export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}
